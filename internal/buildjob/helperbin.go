package buildjob

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// installHint is how to get a bkcache that can be its own helper.
const installHint = "install bkcache with CGO_ENABLED=0 go install github.com/bkcache/bkcache@latest, or set BKCACHE_MOUNT_HELPER to a static bkcache for linux/"

// helperFinder picks the bkcache binary that runs inside the builder as
// the cache-mount helper. It must be a static Linux executable for the
// builder's architecture: the helper build's root filesystem holds only
// that file, so a dynamically linked one (a go build with cgo) cannot
// start, and every mount would fail with "exit code: 1".
type helperFinder struct {
	getenv func(string) string
	exe    string // this binary
	// cacheDir keeps helpers built here, one per bkcache binary.
	cacheDir string
	// build makes a static bkcache for linux/arch at out.
	build func(ctx context.Context, out, arch string) error
	infof func(string, ...any)
}

func (j *job) helperFinder() *helperFinder {
	exe, _ := os.Executable()
	return &helperFinder{getenv: j.getenv, exe: exe, cacheDir: userCacheDir(j.getenv), build: goBuildHelper, infof: j.rep.Infof}
}

// find returns a helper for platform p, in this order:
// $BKCACHE_MOUNT_HELPER; dist/bkcache-linux-<arch> beside this binary
// (the action's dist/); this binary when it is static and for p; a
// helper built before into the user cache dir; one built now with Go
// (CGO_ENABLED=0). Otherwise an error that says how to fix it, which
// the caller reports once.
func (f *helperFinder) find(p ocispecs.Platform) (string, error) {
	arch := p.Architecture
	if v := f.getenv("BKCACHE_MOUNT_HELPER"); v != "" {
		if err := checkHelper(v, arch); err != nil {
			return "", fmt.Errorf("BKCACHE_MOUNT_HELPER: %w", err)
		}
		return v, nil
	}
	if p.OS != "linux" {
		return "", fmt.Errorf("the builder runs %s; cache mounts need a linux builder", p.OS)
	}
	var tried []string
	if f.exe != "" {
		sibling := filepath.Join(filepath.Dir(f.exe), "bkcache-linux-"+arch)
		if err := checkHelper(sibling, arch); err == nil {
			return sibling, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			tried = append(tried, err.Error())
		}
		if runtime.GOOS == "linux" {
			err := checkHelper(f.exe, arch)
			if err == nil {
				return f.exe, nil
			}
			tried = append(tried, "this bkcache: "+err.Error())
		}
	}
	if f.cacheDir == "" || f.exe == "" {
		return "", fmt.Errorf("no static bkcache for linux/%s (%s): %s%s", arch, strings.Join(tried, "; "), installHint, arch)
	}
	key, err := fileKey(f.exe)
	if err != nil {
		return "", err
	}
	// Beside, not inside, the CLI's default local cache (~/.cache/bkcache),
	// whose directories are build caches.
	root := filepath.Join(f.cacheDir, "bkcache-mount-helper")
	built := filepath.Join(root, key, "bkcache-linux-"+arch)
	if checkHelper(built, arch) == nil {
		return built, nil
	}
	if f.build == nil {
		return "", fmt.Errorf("no static bkcache for linux/%s (%s): %s%s", arch, strings.Join(tried, "; "), installHint, arch)
	}
	f.infof("cache mounts: building a static helper for linux/%s once, into %s (%s)", arch, built, strings.Join(tried, "; "))
	if err := os.MkdirAll(filepath.Dir(built), 0o755); err != nil {
		return "", err
	}
	// Built beside its place and renamed, so that a concurrent job never
	// sends a half-written helper.
	tf, err := os.CreateTemp(filepath.Dir(built), "building-*")
	if err != nil {
		return "", err
	}
	tf.Close()
	tmp := tf.Name()
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := f.build(ctx, tmp, arch); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("no static bkcache for linux/%s (%s), and building one failed (%v): %s%s", arch, strings.Join(tried, "; "), err, installHint, arch)
	}
	if err := checkHelper(tmp, arch); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("the helper built for linux/%s: %w", arch, err)
	}
	if err := os.Rename(tmp, built); err != nil {
		return "", err
	}
	// A file system stamps times from a clock a few milliseconds behind
	// time.Now, so a helper another bkcache wrote just after started can
	// carry an earlier time: a second of slack keeps it.
	if n := pruneOldHelpers(root, key, started.Add(-time.Second)); n > 0 {
		f.infof("cache mounts: removed the static helpers of %d older bkcache builds from %s", n, root)
	}
	return built, nil
}

// pruneOldHelpers removes, under root, the helpers of other bkcache
// binaries last written before since: each upgrade would otherwise leave
// its predecessor's (tens of MB) behind. One written since then belongs
// to another bkcache that is in use now, and stays. Only directories
// named as fileKey names them are touched. Failures are left for the
// next build: a stale helper costs disk, not correctness.
func pruneOldHelpers(root, keep string, since time.Time) (removed int) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return 0
	}
	for _, e := range ents {
		if !e.IsDir() || e.Name() == keep || !isFileKey(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(since) {
			continue
		}
		if os.RemoveAll(filepath.Join(root, e.Name())) == nil {
			removed++
		}
	}
	return removed
}

// isFileKey tells a name fileKey gives.
func isFileKey(name string) bool {
	if len(name) != 16 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

// elfMachines are the ELF machines of the architectures BuildKit runs on.
var elfMachines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM, "386": elf.EM_386,
	"riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390,
}

// checkHelper reports why path cannot run as the helper on linux/arch:
// missing (os.ErrNotExist), not an ELF executable, another architecture,
// or dynamically linked.
func checkHelper(path, arch string) error {
	f, err := elf.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err != nil {
		return fmt.Errorf("%s is not a Linux executable: %w", path, err)
	}
	defer f.Close()
	if m, ok := elfMachines[arch]; ok && f.Machine != m {
		return fmt.Errorf("%s is built for %s, not %s", path, f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			libs, _ := f.ImportedLibraries()
			return fmt.Errorf("%s is dynamically linked (built with cgo; it needs %s), and the builder has no libraries for it", path, strings.Join(libs, ", "))
		}
	}
	return nil
}

// fileKey names the helpers built for one bkcache binary.
func fileKey(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// userCacheDir is os.UserCacheDir on Linux and macOS, read through getenv.
func userCacheDir(getenv func(string) string) string {
	if d := getenv("XDG_CACHE_HOME"); d != "" && runtime.GOOS != "darwin" {
		return d
	}
	home := getenv("HOME")
	if home == "" {
		return ""
	}
	if runtime.GOOS == "darwin" {
		return filepath.Join(home, "Library", "Caches")
	}
	return filepath.Join(home, ".cache")
}

// goBuildHelper builds this bkcache again with CGO_ENABLED=0 for
// linux/arch: from the module checkout it was built in (a development
// build), else from the module proxy at its version.
func goBuildHelper(ctx context.Context, out, arch string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return errors.New("no Go toolchain on PATH")
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("this binary has no module information")
	}
	mod, ver := info.Main.Path, info.Main.Version
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	run := func(dir string, args ...string) error {
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir, cmd.Env = dir, env
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(b)))
		}
		return nil
	}
	if ver == "" || ver == "(devel)" {
		// A development build: the checkout is the working directory's
		// module, if it is bkcache's.
		cmd := exec.CommandContext(ctx, goBin, "list", "-m", "-f", "{{.Path}} {{.Dir}}")
		b, err := cmd.Output()
		path, dir, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		if err != nil || path != mod {
			return fmt.Errorf("this is a development build of %s, and the working directory is not its checkout", mod)
		}
		return run(dir, "build", "-trimpath", "-o", out, ".")
	}
	// A released version: a throwaway module that requires it. go install
	// cannot place a cross-compiled binary, so it is go build.
	tmp, err := os.MkdirTemp("", "bkcache-helper-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte("module bkcache-helper-build\n"), 0o644); err != nil {
		return err
	}
	if err := run(tmp, "get", mod+"@"+ver); err != nil {
		return err
	}
	return run(tmp, "build", "-trimpath", "-o", out, mod)
}
