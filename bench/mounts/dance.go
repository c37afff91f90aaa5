package main

// The comparison with buildkit-cache-dance (-dance): its released
// dist/index.js (testdata/buildkit-cache-dance, v3.2.0) run under Node.js
// as its action.yml runs it, against bkcache's helper builds, on the same
// docker-container builder, with the same tree, both moving their archive
// through the same gha cache (the test environment's emulator):
//
//   - cache-dance: actions/cache's restore of the cache directory (the
//     official @actions/cache client, which runs tar | zstd -d), then the
//     action's main step (inject: `docker buildx build` of the directory
//     as the build context, src/inject-cache.ts:36-48). Out: the post step
//     (extract: `docker buildx build --load`, `docker create`,
//     `docker cp -L … - | tar -x`, src/extract-cache.ts:19-45), then
//     actions/cache's save (tar | zstdmt).
//   - bkcache: a probe helper build, mountstore's gha Get into a spool
//     file and one restore helper build; out: one save helper build into
//     a file and Put, as internal/buildjob/mounts.go does.
//
// Same compression level: bkcache packs at zstd's fastest level (1);
// @actions/cache runs the zstd CLI at its default (3), so its saves run
// with ZSTD_CLEVEL=1. Each run uses new mount ids, so both restore into an
// empty mount as on a fresh runner, and both save a new entry (gha
// entries are immutable).

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/buildkit/mountarchive"
	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/mountstore"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// danceHeading starts the comparison's section of results.md; -dance
// rewrites only that section, the other measurements only the rest.
const danceHeading = "### Against buildkit-cache-dance"

type danceBench struct {
	work, helper, builder, image, node string
	env                                []string // the runner's: docker, gha
	store                              mountstore.Store
	stamp                              string
}

func runDance(ctx context.Context, mb, runs int, work, out string) error {
	need := []string{"BKCACHE_TEST_DOCKER_HOST", "BKCACHE_TEST_DOCKER_CONFIG", "BKCACHE_TEST_BUILDX_BUILDER",
		"BKCACHE_TEST_MULTI_BASE_IMAGE", "BKCACHE_TEST_GHA_URL", "BKCACHE_TEST_GHA_SECRET_FILE"}
	for _, v := range need {
		if os.Getenv(v) == "" {
			return fmt.Errorf("%s is not set: source .testenv/env and .testenv/builders.env", v)
		}
	}
	repo, err := filepath.Abs(".")
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "node_modules", "@actions", "cache")); err != nil {
		return fmt.Errorf("run from the repository root, with node_modules installed: %w", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return err
	}
	work = filepath.Join(work, "dance")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	d := &danceBench{work: work, builder: os.Getenv("BKCACHE_TEST_BUILDX_BUILDER"), image: os.Getenv("BKCACHE_TEST_MULTI_BASE_IMAGE"),
		node: node, stamp: time.Now().Format("150405")}
	d.helper = filepath.Join(work, "bin", "bkcache")
	if out, err := goBuild(d.helper); err != nil {
		return fmt.Errorf("building bkcache: %v\n%s", err, out)
	}
	// The driver script resolves @actions/cache beside itself (ESM).
	for _, f := range []struct{ src, dst string }{
		{filepath.Join(repo, "bench", "mounts", "testdata", "actions-cache-dir.mjs"), filepath.Join(work, "actions-cache-dir.mjs")},
		{filepath.Join(repo, "bench", "mounts", "testdata", "buildkit-cache-dance"), filepath.Join(work, "buildkit-cache-dance")},
		{filepath.Join(repo, "node_modules"), filepath.Join(work, "node_modules")},
	} {
		os.Remove(f.dst)
		if err := os.Symlink(f.src, f.dst); err != nil {
			return err
		}
	}
	// The post step runs `sudo rm -rf <cache dir>`; GitHub's runners
	// have passwordless sudo, this machine need not.
	shim := filepath.Join(work, "shim")
	if err := os.MkdirAll(shim, 0o755); err != nil {
		return err
	}
	if _, err := exec.LookPath("sudo"); err != nil {
		if err := os.WriteFile(filepath.Join(shim, "sudo"), []byte("#!/bin/sh\nexec \"$@\"\n"), 0o755); err != nil {
			return err
		}
	}
	secret, err := os.ReadFile(os.Getenv("BKCACHE_TEST_GHA_SECRET_FILE"))
	if err != nil {
		return err
	}
	tok, err := emulator.MintToken([]byte(strings.TrimSpace(string(secret))), emulator.TokenOptions{Repo: "bkcache/bench-dance", Write: "refs/heads/main", TTL: 6 * time.Hour})
	if err != nil {
		return err
	}
	runner := map[string]string{
		"DOCKER_HOST": os.Getenv("BKCACHE_TEST_DOCKER_HOST"), "DOCKER_CONFIG": os.Getenv("BKCACHE_TEST_DOCKER_CONFIG"),
		"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_RESULTS_URL": strings.TrimSuffix(os.Getenv("BKCACHE_TEST_GHA_URL"), "/") + "/",
		"ACTIONS_CACHE_SERVICE_V2": "true", "RUNNER_TEMP": filepath.Join(work, "runner-temp"),
		"PATH": shim + string(os.PathListSeparator) + os.Getenv("PATH"),
	}
	for k, v := range runner {
		d.env = append(d.env, k+"="+v)
	}
	if err := os.MkdirAll(runner["RUNNER_TEMP"], 0o755); err != nil {
		return err
	}
	// bkcache's helper reaches the builder through the docker CLI.
	os.Setenv("DOCKER_HOST", runner["DOCKER_HOST"])
	os.Setenv("DOCKER_CONFIG", runner["DOCKER_CONFIG"])
	getenv := func(k string) string {
		if v, ok := runner[k]; ok {
			return v
		}
		return os.Getenv(k)
	}
	d.store, err = mountstore.FromEntry(ctx, cacheentry.Entry{Type: "gha", Attrs: map[string]string{"scope": "bench-dance-" + d.stamp}}, getenv)
	if err != nil {
		return err
	}

	tree := filepath.Join(filepath.Dir(work), "tree")
	st, err := makeTree(tree, int64(mb)<<20)
	if err != nil {
		return err
	}
	fmt.Printf("tree: %d files, %.0f MiB of file data\n", st.Files, float64(st.Bytes)/(1<<20))
	defer d.dropEntries(ctx)
	if err := d.seed(ctx, tree); err != nil {
		return err
	}
	var rows [][]time.Duration // per run: bkcache restore, save; cache-dance restore, save
	for i := 1; i <= runs; i++ {
		bk, err := d.bkcacheRun(ctx, i, st)
		if err != nil {
			return fmt.Errorf("bkcache, run %d: %w", i, err)
		}
		cd, err := d.danceRun(ctx, i, st)
		if err != nil {
			return fmt.Errorf("cache-dance, run %d: %w", i, err)
		}
		fmt.Printf("run %d: bkcache restore %s save %s | cache-dance restore %s save %s\n", i, bk[0], bk[1], cd[0], cd[1])
		rows = append(rows, append(bk, cd...))
	}
	md := danceReport(st, mb, runs, rows)
	fmt.Print(md)
	return spliceResults(out, md, true)
}

// seed saves the tree in both stores, untimed: the cache a job restores.
func (d *danceBench) seed(ctx context.Context, tree string) error {
	archive := filepath.Join(d.work, "seed.tar.zst")
	if err := packFile(ctx, tree, archive); err != nil {
		return err
	}
	if err := d.put(ctx, archive); err != nil {
		return err
	}
	run := filepath.Join(d.work, "run-0")
	os.RemoveAll(run)
	if err := os.MkdirAll(run, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(run)
	if err := sh(fmt.Sprintf("cp -a %s %s", tree, filepath.Join(run, "cache"))); err != nil {
		return err
	}
	return d.actionsCache(run, "save", d.danceKey(0))
}

// dropEntries deletes this bench's gha entries (a dozen archives of
// hundreds of MB) from the emulator, through its REST API, which takes
// any token unless it was started with one.
func (d *danceBench) dropEntries(ctx context.Context) {
	rest, err := ghacache.NewREST(http.DefaultClient, strings.TrimSuffix(os.Getenv("BKCACHE_TEST_GHA_URL"), "/")+"/api/v3", "ghs_bench_mounts_dance")
	if err == nil {
		var es []ghacache.CacheEntry
		es, err = rest.List(ctx, "bkcache", "bench-dance", ghacache.ListOptions{})
		for _, e := range es {
			if err == nil && strings.Contains(e.Key, d.stamp) {
				err = rest.DeleteByID(ctx, "bkcache", "bench-dance", e.ID)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/mounts: deleting the bench's gha entries:", err)
	}
}

func (d *danceBench) danceKey(run int) string { return fmt.Sprintf("dance-%s-%d", d.stamp, run) }

const benchMountKey = "tree"

func (d *danceBench) put(ctx context.Context, archive string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return d.store.Put(ctx, benchMountKey, f, fi.Size())
}

func (d *danceBench) bkcacheRun(ctx context.Context, run int, st mountarchive.Stats) ([]time.Duration, error) {
	m := buildkit.CacheMount{CacheID: fmt.Sprintf("/bench-dance-%s-bk-%d", d.stamp, run), Sharing: "shared"}
	defer d.prune(m.CacheID)
	h, err := buildkit.NewMountHelper(ctx, "docker-container://buildx_buildkit_"+d.builder+"0", os.Getenv,
		func(ocispecs.Platform) (string, error) { return d.helper, nil })
	if err != nil {
		return nil, err
	}
	defer h.Close()
	restore, err := timed(func() error {
		// As the CLI: a probe first (a builder that kept the mount
		// needs no archive).
		if _, err := h.Probe(ctx, m); err != nil {
			return err
		}
		rc, _, err := d.store.Get(ctx, benchMountKey)
		if err != nil {
			return err
		}
		defer rc.Close()
		rep, err := h.Restore(ctx, m, rc, mountarchive.UnpackOptions{})
		if err == nil && !rep.Restored {
			err = fmt.Errorf("restore found a full mount")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	saved := filepath.Join(d.work, fmt.Sprintf("save-%d.tar.zst", run))
	defer os.Remove(saved)
	var rep mountarchive.Report
	save, err := timed(func() error {
		f, err := os.Create(saved)
		if err != nil {
			return err
		}
		rep, err = h.Save(ctx, m, 0, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return d.put(ctx, saved)
	})
	if err != nil {
		return nil, err
	}
	if rep.Stats.Files < st.Files {
		return nil, fmt.Errorf("saved %d files of %d", rep.Stats.Files, st.Files)
	}
	return []time.Duration{restore, save}, nil
}

func (d *danceBench) danceRun(ctx context.Context, run int, st mountarchive.Stats) ([]time.Duration, error) {
	id := fmt.Sprintf("bench-dance-%s-cd-%d", d.stamp, run)
	defer d.prune(id)
	dir := filepath.Join(d.work, fmt.Sprintf("run-%d", run))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// What a workflow passes the action: the directory actions/cache
	// restores, mapped to the mount.
	args := []string{filepath.Join(d.work, "buildkit-cache-dance", "dist", "index.js"),
		"--cache-map", fmt.Sprintf(`{"cache": {"id": %q, "target": "/var/cache-target", "sharing": "shared"}}`, id),
		"--utility-image", d.image, "--builder", d.builder, "--scratch-dir", "scratch"}
	restore, err := timed(func() error {
		if err := d.actionsCache(dir, "restore", d.danceKey(run-1)); err != nil {
			return err
		}
		return d.cmd(dir, nil, d.node, args...)
	})
	if err != nil {
		return nil, err
	}
	save, err := timed(func() error {
		if err := d.cmd(dir, []string{"STATE_POST=true"}, d.node, args...); err != nil {
			return err
		}
		return d.actionsCache(dir, "save", d.danceKey(run))
	})
	if err != nil {
		return nil, err
	}
	got, err := mountarchive.Measure(filepath.Join(dir, "cache"))
	if err != nil || got.Files < st.Files {
		return nil, fmt.Errorf("extracted %d files of %d: %v", got.Files, st.Files, err)
	}
	return []time.Duration{restore, save}, nil
}

// actionsCache saves or restores dir/cache with @actions/cache, its
// zstd at bkcache's level.
func (d *danceBench) actionsCache(dir, op, key string) error {
	return d.cmd(dir, []string{"ZSTD_CLEVEL=1"}, d.node, filepath.Join(d.work, "actions-cache-dir.mjs"), op, "cache", key)
}

func (d *danceBench) cmd(dir string, env []string, name string, args ...string) error {
	c := exec.Command(name, args...)
	c.Dir = dir
	c.Env = append(append(os.Environ(), d.env...), env...)
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// prune drops, untimed, what a run left in the builder and the daemon:
// its cache mount, the dance's build steps, the build contexts both sent
// (hundreds of MB a run) and the helper binaries bkcache sent (tens of MB
// a helper build), its image and container. Only records no build is
// using go.
func (d *danceBench) prune(id string) {
	for _, f := range []string{"description~=" + strings.TrimPrefix(id, "/"), "description~=dance-cache",
		`description~="local source for (context|bkcache-archive|bkcache-helper)"`} {
		if err := d.cmd(d.work, nil, "docker", "buildx", "prune", "--builder", d.builder, "-f", "--filter", f); err != nil {
			fmt.Fprintln(os.Stderr, "bench/mounts: pruning the builder:", err)
		}
	}
	_ = d.cmd(d.work, nil, "docker", "rm", "-f", "cache-container")
	_ = d.cmd(d.work, nil, "docker", "rmi", "-f", "dance:extract")
}

func danceReport(st mountarchive.Stats, mb, runs int, rows [][]time.Duration) string {
	var b strings.Builder
	printf := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	column := func(f func(r []time.Duration) time.Duration) []time.Duration {
		var c []time.Duration
		for _, r := range rows {
			c = append(c, f(r))
		}
		return c
	}
	cell := func(c []time.Duration) string {
		return fmt.Sprintf("%.1f s (%.1f–%.1f)", median(c).Seconds(), slices.Min(c).Seconds(), slices.Max(c).Seconds())
	}
	bkIn, bkOut := column(func(r []time.Duration) time.Duration { return r[0] }), column(func(r []time.Duration) time.Duration { return r[1] })
	cdIn, cdOut := column(func(r []time.Duration) time.Duration { return r[2] }), column(func(r []time.Duration) time.Duration { return r[3] })
	bkRT := column(func(r []time.Duration) time.Duration { return r[0] + r[1] })
	cdRT := column(func(r []time.Duration) time.Duration { return r[2] + r[3] })
	ratios := column(func(r []time.Duration) time.Duration {
		return time.Duration(float64(time.Second) * (r[2] + r[3]).Seconds() / (r[0] + r[1]).Seconds())
	})
	printf("\n%s\n\n", danceHeading)
	printf("`go run ./bench/mounts -dance -mb %d -runs %d` on the test environment (%s, %d cores): a %.0f MiB cache mount (%d files), median (min–max) of %d runs. ",
		mb, runs, runtime.GOARCH, runtime.NumCPU(), float64(st.Bytes)/(1<<20), st.Files, runs)
	printf("Both sides use the same tree, the same docker-container builder (`docker buildx`, BuildKit in a container) and zstd level 1, and both move their archive through the same gha cache (the emulator of the test environment). ")
	printf("cache-dance is its released `dist/index.js` (v3.2.0, vendored in bench/mounts/testdata) under Node.js, with actions/cache's client (`@actions/cache`) restoring and saving its directory; bkcache is its probe, restore and save, each one gateway container on the builder with the archive streamed between its gha mount store and the mount, as `bkcache build` runs them. Each run restores into an empty mount and saves a new entry.\n\n")
	printf("| Method | Restore (download + into the mount) | Save (out of the mount + upload) | Round trip |\n")
	printf("|:--|--:|--:|--:|\n")
	printf("| bkcache | %s | %s | %s |\n", cell(bkIn), cell(bkOut), cell(bkRT))
	printf("| buildkit-cache-dance + actions/cache | %s | %s | %s |\n", cell(cdIn), cell(cdOut), cell(cdRT))
	printf("\ncache-dance round trip / bkcache round trip: %.2f× (median of the per-run ratios; %.2f–%.2f).\n",
		median(ratios).Seconds(), slices.Min(ratios).Seconds(), slices.Max(ratios).Seconds())
	return b.String()
}

// spliceResults writes md into file: as the comparison's section (dance)
// or as everything before it, keeping the other part as it was.
func spliceResults(file, md string, dance bool) error {
	old, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	before, after := string(old), ""
	if i := strings.Index(before, "\n"+danceHeading); i >= 0 {
		before, after = before[:i], before[i:]
	}
	if dance {
		after = md
	} else {
		before = md
	}
	return os.WriteFile(file, []byte(strings.TrimRight(before, "\n")+"\n"+after), 0o644)
}
