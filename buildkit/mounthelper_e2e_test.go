package buildkit

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/buildkit/mountarchive"
	"github.com/bkcache/bkcache/internal/testenv"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestE2EMountHelperReachesTheBuildsCache proves the helper builds mount the
// very cache a Dockerfile RUN step mounts: a restore is seen by the build,
// and what the build writes is what a save returns.
func TestE2EMountHelperReachesTheBuildsCache(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	bin := testenv.StaticBkcache(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		flags string
		mount CacheMount
	}{
		{"id and locked", "id=m1,sharing=locked", CacheMount{CacheID: "/m1", Sharing: "locked"}},
		{"uid", "uid=1000", CacheMount{CacheID: "//c", Owned: true, UID: 1000, Mode: 0o755, Sharing: "shared"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := testenv.NewBuildkitd(t)
			dockerfile := "FROM " + env.BaseImage + "\n" +
				"RUN --mount=type=cache,target=/c," + tc.flags + " echo " + testenv.RandomHex(6) + " && ls -ln /c > /seen && echo built > /c/by-build\n"
			ctxDir := writeContext(t, dockerfile, map[string]string{})

			h, err := NewMountHelper(ctx, addr, func(string) string { return "" }, func(ocispecs.Platform) (string, error) { return bin, nil })
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()

			// An archive made from a directory on this machine.
			src := t.TempDir()
			if err := os.WriteFile(filepath.Join(src, "restored"), []byte("from archive"), 0o600); err != nil {
				t.Fatal(err)
			}
			archive := filepath.Join(t.TempDir(), "a.tar.zst")
			if out, err := exec.Command(bin, "__cache-mount", "pack", src, filepath.Dir(archive), "0").CombinedOutput(); err != nil {
				t.Fatalf("pack: %v %s", err, out)
			}
			if err := os.Rename(filepath.Join(filepath.Dir(archive), "1-archive.tar.zst"), archive); err != nil {
				t.Fatal(err)
			}
			if rep, err := h.Probe(ctx, tc.mount); err != nil || rep.Files != 0 {
				t.Fatalf("probe of a fresh mount: %+v %v", rep, err)
			}
			rep, err := h.Restore(ctx, tc.mount, archive, mountarchive.UnpackOptions{})
			if err != nil || !rep.Restored {
				t.Fatalf("restore: %+v %v", rep, err)
			}

			if rep, err := h.Probe(ctx, tc.mount); err != nil || rep.Files != 1 {
				t.Fatalf("probe after the restore: %+v %v", rep, err)
			}
			// A second restore finds the mount full and keeps it.
			if rep, err := h.Restore(ctx, tc.mount, archive, mountarchive.UnpackOptions{}); err != nil || rep.Restored || rep.Files != 1 {
				t.Fatalf("second restore: %+v %v", rep, err)
			}
			outDir := t.TempDir()
			mustBuild(t, addr, Request{Build: BuildOptions{Context: ctxDir, Outputs: []string{"type=local,dest=" + outDir}}})
			seen, err := os.ReadFile(filepath.Join(outDir, "seen"))
			if err != nil || !strings.Contains(string(seen), "restored") {
				t.Fatalf("the build did not see the restored file: %q %v", seen, err)
			}

			var buf bytes.Buffer
			rep, err = h.Save(ctx, tc.mount, 0, &buf)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Files != 2 || buf.Len() == 0 {
				t.Fatalf("save: %+v, %d bytes; want 2 files", rep, buf.Len())
			}
			rep, err = h.Save(ctx, tc.mount, 5, &bytes.Buffer{})
			if err != nil || !rep.Exceeded {
				t.Fatalf("save over the cap: %+v %v", rep, err)
			}
		})
	}
}
