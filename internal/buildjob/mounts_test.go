package buildjob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/buildkit/mountarchive"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/cachemount"
	"github.com/bkcache/bkcache/internal/config"
	"github.com/bkcache/bkcache/internal/ghaction"
	"github.com/bkcache/bkcache/internal/mountstore"
)

// The download of an archive is bounded: a store's object can be any
// size, and the size it declares is not what it is held to.
func TestArchiveLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int
		limit int64
		err   error
	}{
		{"under", 10, 10, nil},
		{"over", 11, 10, errArchiveOverCap},
		{"far over", 1 << 20, 10, errArchiveOverCap},
		{"no limit", 1 << 16, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &archiveReader{r: bytes.NewReader(make([]byte, tc.size)), limit: tc.limit}
			n, err := io.Copy(io.Discard, a)
			if !errors.Is(err, tc.err) || a.over != (tc.err != nil) {
				t.Fatalf("err = %v, over %t; want %v", err, a.over, tc.err)
			}
			// At most one read past the limit reaches the builder.
			if tc.limit > 0 && n > tc.limit+32<<10 {
				t.Errorf("passed on %d bytes", n)
			}
		})
	}
	if got := archiveLimit(2 << 30); got <= 2<<30 || got > 3<<30 {
		t.Errorf("archiveLimit(2GiB) = %d", got)
	}
}

func TestHelperTimeout(t *testing.T) {
	if a, b := helperTimeout(0), helperTimeout(2<<30); a < time.Minute || b <= a || b > time.Hour {
		t.Errorf("timeouts %s for nothing, %s for 2GiB", a, b)
	}
	ctx := context.Background()
	err := helperErr(ctx, fmt.Errorf("solve: %w", context.DeadlineExceeded), time.Minute)
	if !strings.Contains(err.Error(), "did not finish in 1m0s") {
		t.Errorf("err = %v", err)
	}
	// The job's own cancellation is not a helper timeout.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := helperErr(cctx, context.Canceled, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

// fakeHelper stands in for the builder's helper builds. A nil func hangs
// until the context ends, as a stuck helper build does.
type fakeHelper struct {
	probe     func(n int) ([]mountarchive.Report, error)
	restore   func(archives []io.Reader) ([]mountarchive.Report, error)
	save      func(ws []io.Writer) ([]mountarchive.Report, error)
	restored  []string // ids sent to RestoreAll
	unchanged []string // as sent to SaveAll
}

func hang(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

func (f *fakeHelper) ProbeAll(ctx context.Context, ms []buildkit.CacheMount, _ time.Time) ([]mountarchive.Report, error) {
	if f.probe == nil {
		return nil, hang(ctx)
	}
	return f.probe(len(ms))
}

func (f *fakeHelper) RestoreAll(ctx context.Context, ms []buildkit.CacheMount, archives []io.Reader, _ mountarchive.UnpackOptions) ([]mountarchive.Report, error) {
	for _, m := range ms {
		f.restored = append(f.restored, m.CacheID)
	}
	if f.restore == nil {
		return nil, hang(ctx)
	}
	return f.restore(archives)
}

func (f *fakeHelper) SaveAll(ctx context.Context, _ []buildkit.CacheMount, _ int64, ws []io.Writer, unchanged []string) ([]mountarchive.Report, error) {
	f.unchanged = unchanged
	if f.save == nil {
		return nil, hang(ctx)
	}
	return f.save(ws)
}

func (f *fakeHelper) Close() error { return nil }

func empties(n int) ([]mountarchive.Report, error) { return make([]mountarchive.Report, n), nil }

// TestRestoreAndSaveNeverFailTheBuild: a helper build that hangs, an
// archive over the cap, a mount that fails alone; each ends as that
// mount's result and a warning, in bounded time.
func TestRestoreAndSaveNeverFailTheBuild(t *testing.T) {
	defer func(d time.Duration) { helperStartup = d }(helperStartup)
	helperStartup = 100 * time.Millisecond
	a := cachemount.Mount{ID: "a", Target: "/a", Sharing: cachemount.SharingShared, Targets: []string{"/a"}}
	b := cachemount.Mount{ID: "b", Target: "/b", Sharing: cachemount.SharingShared, Targets: []string{"/b"}}
	for _, tc := range []struct {
		name      string
		helper    *fakeHelper
		archives  map[string]int // mount id → archive size in the store
		restored  []string       // each mount's restore result, in part
		saved     []string       // each mount's save result, in part
		warnings  []string
		sentToFix []string // mounts sent to RestoreAll
		unchanged []string // trees sent to SaveAll
	}{
		{
			name:     "a probe that hangs",
			helper:   &fakeHelper{save: func(ws []io.Writer) ([]mountarchive.Report, error) { return empties(len(ws)) }},
			archives: map[string]int{"a": 10},
			restored: []string{"not restored (failed)", "not restored (failed)"},
			saved:    []string{"it is empty", "it is empty"},
			warnings: []string{"cache mounts not restored: the cache mount helper did not finish in 100ms and was stopped"},
		},
		{
			name:      "a restore that hangs, a save that hangs",
			helper:    &fakeHelper{probe: empties},
			archives:  map[string]int{"a": 10, "b": 10},
			restored:  []string{"not restored (failed)", "not restored (failed)"},
			saved:     []string{"not saved (reading it failed)", "not saved (reading it failed)"},
			warnings:  []string{"cache mounts not restored: the cache mount helper did not finish", "cache mounts not saved: the cache mount helper did not finish"},
			sentToFix: []string{"/a", "/b"},
		},
		{
			name: "one mount fails alone; one archive is over the cap in the store",
			helper: &fakeHelper{
				probe: func(n int) ([]mountarchive.Report, error) {
					return []mountarchive.Report{{Error: "permission denied"}, {}}, nil
				},
				save: func(ws []io.Writer) ([]mountarchive.Report, error) {
					ws[1].Write([]byte("archive"))
					return []mountarchive.Report{{Error: "disk full"}, {Stats: mountarchive.Stats{Files: 3}}}, nil
				},
			},
			archives: map[string]int{"a": 10, "b": 4 << 20},
			restored: []string{"not restored (failed)", "not restored: the archive is over the size cap"},
			saved:    []string{"not saved (reading it failed)", "saved to local "},
			warnings: []string{"cache mount a: not restored: permission denied", "cache mount b: not restored: the archive in local", "cache mount a not saved: disk full"},
		},
		{
			name: "restored, and one over the cap unpacked",
			helper: &fakeHelper{
				probe: empties,
				restore: func(archives []io.Reader) ([]mountarchive.Report, error) {
					return []mountarchive.Report{{Exceeded: true}, {Restored: true, Stats: mountarchive.Stats{Files: 2}}}, nil
				},
				save: func(ws []io.Writer) ([]mountarchive.Report, error) { return empties(len(ws)) },
			},
			archives:  map[string]int{"a": 10, "b": 10},
			restored:  []string{"not restored: the archive is over the size cap", "restored from local "},
			saved:     []string{"it is empty", "it is empty"},
			warnings:  []string{"cache mount a: not restored: the archive in local"},
			sentToFix: []string{"/a", "/b"},
			unchanged: []string{"", ""},
		},
		{
			name: "a stopped step's writes are restored over; the builder's own are kept",
			helper: &fakeHelper{
				probe: func(n int) ([]mountarchive.Report, error) {
					return []mountarchive.Report{{Stats: mountarchive.Stats{Files: 3}, Fresh: true}, {Stats: mountarchive.Stats{Files: 5}}}, nil
				},
				restore: func(archives []io.Reader) ([]mountarchive.Report, error) {
					return []mountarchive.Report{{Restored: true, Discarded: 3, Stats: mountarchive.Stats{Files: 2}}}, nil
				},
				save: func(ws []io.Writer) ([]mountarchive.Report, error) { return empties(len(ws)) },
			},
			archives:  map[string]int{"a": 10, "b": 10},
			restored:  []string{"over 3 files the stopped step had written", "kept the builder's own contents (5 files)"},
			saved:     []string{"it is empty", "it is empty"},
			sentToFix: []string{"/a"},
		},
		{
			name: "restored, and one saved as restored",
			helper: &fakeHelper{
				probe: empties,
				restore: func(archives []io.Reader) ([]mountarchive.Report, error) {
					return []mountarchive.Report{
						{Restored: true, Stats: mountarchive.Stats{Files: 2, Tree: "tree-a"}},
						{Restored: true, Stats: mountarchive.Stats{Files: 2, Tree: "tree-b"}},
					}, nil
				},
				save: func(ws []io.Writer) ([]mountarchive.Report, error) {
					ws[1].Write([]byte("archive"))
					return []mountarchive.Report{{Unchanged: true, Stats: mountarchive.Stats{Files: 2}}, {Stats: mountarchive.Stats{Files: 3}}}, nil
				},
			},
			archives:  map[string]int{"a": 10, "b": 10},
			restored:  []string{"restored from local ", "restored from local "},
			saved:     []string{"not saved: unchanged since the restore", "saved to local "},
			sentToFix: []string{"/a", "/b"},
			unchanged: []string{"tree-a", "tree-b"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			store := mountstore.NewLocal(filepath.Join(dir, "cache.mounts"))
			for _, m := range []cachemount.Mount{a, b} {
				if n, ok := tc.archives[m.ID]; ok {
					if err := store.Put(context.Background(), m.Key(), bytes.NewReader(make([]byte, n)), int64(n)); err != nil {
						t.Fatal(err)
					}
				}
			}
			var out bytes.Buffer
			getenv := func(string) string { return "" }
			j := &job{cfg: config.Config{CacheMountsMaxSize: 1 << 20}, getenv: getenv, rep: &actionReporter{r: ghaction.New(getenv, &out)}}
			local := cacheentry.Entry{Type: cacheentry.TypeLocal, Attrs: map[string]string{"dest": filepath.Join(dir, "cache")}}
			run := &mountRun{
				plan:   &mountPlan{mounts: []cachemount.Mount{a, b}, imports: []cacheentry.Entry{local}, export: &local},
				helper: tc.helper, tmp: t.TempDir(), results: make([]mountResult, 2),
			}
			start := time.Now()
			j.restoreAll(context.Background(), run)
			j.saveAll(context.Background(), run, buildkit.Result{})
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			for i, r := range run.results {
				if !strings.Contains(r.restored, tc.restored[i]) || !strings.Contains(r.saved, tc.saved[i]) {
					t.Errorf("mount %d: %q; %q, want %q; %q", i, r.restored, r.saved, tc.restored[i], tc.saved[i])
				}
			}
			for _, w := range tc.warnings {
				if !strings.Contains(out.String(), "::warning::"+w) {
					t.Errorf("no warning %q in:\n%s", w, out.String())
				}
			}
			if !slices.Equal(tc.helper.restored, tc.sentToFix) && (len(tc.helper.restored) > 0 || len(tc.sentToFix) > 0) {
				t.Errorf("sent to RestoreAll: %q, want %q", tc.helper.restored, tc.sentToFix)
			}
			if tc.unchanged != nil && !slices.Equal(tc.helper.unchanged, tc.unchanged) {
				t.Errorf("sent to SaveAll as unchanged: %q, want %q", tc.helper.unchanged, tc.unchanged)
			}
		})
	}
}
