package ghacache

import (
	"bytes"
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"

	"github.com/bkcache/bkcache/ghacache/emulator"
)

// Tests of the cache-economy mechanisms (sweep, cleanup after export,
// completeness) against the emulator over real Azurite blobs.

// steppingClock advances a second on every reading, so every entry the
// emulator records gets its own time.
type steppingClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

type economyEnv struct {
	emuEnv
	t     *testing.T
	clock *steppingClock
	rest  *REST
}

func newEconomyEnv(t *testing.T) economyEnv {
	clk := &steppingClock{now: time.Now().Add(time.Minute)}
	env := newEmuEnvConfig(t, emulator.Config{Blobs: azuriteStore(t), Now: clk.Now})
	rest, err := NewREST(env.srv.Client(), env.srv.URL, "ghs_anytoken")
	if err != nil {
		t.Fatal(err)
	}
	return economyEnv{emuEnv: env, t: t, clock: clk, rest: rest}
}

func (e economyEnv) job(write string, read ...string) *Client {
	tok, err := e.emu.Token(emulator.TokenOptions{Repo: "o/r", Write: write, Read: read, Now: e.clock.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := NewClient(Config{ResultsURL: e.srv.URL, Token: tok, ServiceV2: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func layer(name string) digest.Digest { return digest.FromString(name) }

func (e economyEnv) saveBlob(c *Client, name string) {
	e.t.Helper()
	data := []byte("layer " + name)
	if err := c.Save(context.Background(), BlobKey(layer(name).String()), BuildKitVersion(), bytes.NewReader(data), int64(len(data))); err != nil {
		e.t.Fatal(err)
	}
}

func (e economyEnv) saveIndex(c *Client, ref string, names ...string) {
	e.t.Helper()
	cfg := &cacheimporttypes.CacheConfig{}
	for i, n := range names {
		cfg.Layers = append(cfg.Layers, cacheimporttypes.CacheLayer{Blob: layer(n), ParentIndex: i - 1,
			Annotations: &cacheimporttypes.LayerAnnotations{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", DiffID: layer("diff " + n), Size: int64(len("layer " + n))}})
		cfg.Records = append(cfg.Records, cacheimporttypes.CacheRecord{Digest: layer("step " + n), Results: []cacheimporttypes.CacheResult{{LayerIndex: i}}})
	}
	if err := c.SaveIndexConfig(context.Background(), "app", ref, cfg); err != nil {
		e.t.Fatal(err)
	}
}

// keys lists the entries on ref, sorted.
func (e economyEnv) keys(ref string) []string {
	var out []string
	for _, en := range e.emu.Entries("o/r") {
		if en.Scope == ref {
			out = append(out, en.Key)
		}
	}
	sort.Strings(out)
	return out
}

func blobKeys(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, BlobKey(layer(n).String()))
	}
	return out
}

const (
	mainRef = "refs/heads/main"
	prRef   = "refs/pull/1/merge"
)

func TestSweepRef(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		grace    time.Duration
		noIndex  bool
		wantGone []string
		wantKept int
	}{
		{name: "deletes what the newest index does not name and nobody used", wantGone: []string{"app-v1"}, wantKept: 3},
		{name: "keeps everything within the grace period", grace: time.Hour, wantKept: 4},
		{name: "without an index deletes nothing", noIndex: true, wantKept: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEconomyEnv(t)
			main := e.job(mainRef)
			for _, n := range []string{"base", "app-v1", "shared-v1"} {
				e.saveBlob(main, n)
			}
			if tt.noIndex {
				res, err := SweepRef(ctx, e.rest, main, "o", "r", mainRef, "app", tt.grace)
				if err != nil || res.Deleted != 0 {
					t.Fatalf("SweepRef without index = %+v, %v; want nothing deleted", res, err)
				}
				return
			}
			e.saveIndex(main, mainRef, "base", "app-v1")
			e.saveBlob(main, "app-v2")
			e.saveIndex(main, mainRef, "base", "app-v2")
			// A pull request still names shared-v1, saved on main: its
			// lookup after main's newest index keeps it.
			pr := e.job(prRef, mainRef)
			if _, ok, err := pr.Lookup(ctx, BlobKey(layer("shared-v1").String()), nil, BuildKitVersion()); err != nil || !ok {
				t.Fatalf("PR lookup of shared-v1: %v, %v", ok, err)
			}
			e.saveBlob(pr, "pr-only")
			before := e.keys(prRef)

			res, err := SweepRef(ctx, e.rest, main, "o", "r", mainRef, "app", tt.grace)
			if err != nil {
				t.Fatal(err)
			}
			if res.Deleted != len(tt.wantGone) || res.Kept != tt.wantKept {
				t.Errorf("SweepRef = %+v, want %d deleted", res, len(tt.wantGone))
			}
			have := map[string]bool{}
			for _, k := range e.keys(mainRef) {
				have[k] = true
			}
			for _, k := range blobKeys(tt.wantGone...) {
				if have[k] {
					t.Errorf("%s survived the sweep", k)
				}
			}
			for _, k := range blobKeys("base", "app-v2", "shared-v1") {
				if !have[k] {
					t.Errorf("%s was swept", k)
				}
			}
			if after := e.keys(prRef); len(after) != len(before) {
				t.Errorf("the pull request's entries changed: %v -> %v", before, after)
			}
		})
	}
}

func TestCleanupAfterExport(t *testing.T) {
	ctx := context.Background()
	const mq = "refs/heads/gh-readonly-queue/main/pr-1-0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name     string
		ref      string
		o        ExportCleanup
		wantLeft int  // entries left on ref
		keptOnly bool // nothing to free
	}{
		{name: "prunes superseded indexes", ref: mainRef, o: ExportCleanup{Ref: mainRef}, wantLeft: 3},
		{name: "sweeps too", ref: mainRef, o: ExportCleanup{Ref: mainRef, Sweep: true, SweepGrace: time.Nanosecond}, wantLeft: 2},
		{name: "deletes a merge-queue ref's caches not read within the grace", ref: mq, o: ExportCleanup{Ref: mq, Transient: true, Now: time.Now().Add(3 * time.Hour)}, wantLeft: 0},
		{name: "keeps a merge-queue ref's caches read within the grace", ref: mq, o: ExportCleanup{Ref: mq, Transient: true}, wantLeft: 4, keptOnly: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEconomyEnv(t)
			c := e.job(tt.ref, mainRef)
			e.saveBlob(c, "a")
			e.saveIndex(c, tt.ref, "a")
			e.saveBlob(c, "b")
			e.saveIndex(c, tt.ref, "b")
			o := tt.o
			o.Owner, o.Repo, o.Scope = "o", "r", "app"
			rep, err := e.rest.CleanupAfterExport(ctx, c, o)
			if err != nil {
				t.Fatal(err)
			}
			if left := e.keys(tt.ref); len(left) != tt.wantLeft {
				t.Errorf("left %v (report %+v), want %d entries", left, rep, tt.wantLeft)
			}
			if rep.Freed() <= 0 != tt.keptOnly {
				t.Errorf("report %+v", rep)
			}
			if tt.keptOnly && rep.TransientKept != tt.wantLeft {
				t.Errorf("report %+v, want %d kept", rep, tt.wantLeft)
			}
		})
	}
}

func TestCompleteness(t *testing.T) {
	ctx := context.Background()
	e := newEconomyEnv(t)
	main := e.job(mainRef)
	if _, _, found, err := e.rest.Completeness(ctx, main, "o", "r", "app", mainRef); err != nil || found {
		t.Fatalf("Completeness without index: found %v, %v", found, err)
	}
	e.saveBlob(main, "a")
	e.saveBlob(main, "b")
	e.saveIndex(main, mainRef, "a", "b")
	check := func(wantMissing int) {
		t.Helper()
		missing, total, found, err := e.rest.Completeness(ctx, e.job(prRef, mainRef), "o", "r", "app", mainRef)
		if err != nil || !found || missing != wantMissing || total != 2 {
			t.Fatalf("Completeness = %d of %d missing (found %v, %v), want %d of 2", missing, total, found, err, wantMissing)
		}
	}
	check(0)
	if err := e.rest.DeleteByKey(ctx, "o", "r", BlobKey(layer("b").String()), mainRef); err != nil {
		t.Fatal(err)
	}
	check(1)
}

func TestSaveIndexCounts(t *testing.T) {
	e := newEconomyEnv(t)
	main := e.job(mainRef)
	for range 3 {
		e.saveIndex(main, mainRef, "a")
	}
	idx, ok, err := main.LatestIndex(context.Background(), "app", mainRef)
	if err != nil || !ok || idx.Key != IndexKey("app", mainRef)+"#3" {
		t.Fatalf("LatestIndex = %q, %v, %v; want #3", idx.Key, ok, err)
	}
	cfg, err := main.ReadIndex(context.Background(), idx)
	if err != nil {
		t.Fatal(err)
	}
	if got := IndexBlobs(cfg); len(got) != 1 || got[0] != layer("a") {
		t.Errorf("IndexBlobs = %v", got)
	}
}

func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"layers":[{"blob":"sha256:` + layer("a").Encoded() + `","parent":-1}],"records":[{"digest":"sha256:` + layer("s").Encoded() + `","layers":[{"layer":0}]}]}`))
	f.Add([]byte(`{"layers":[{"blob":"nope"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseIndex(data)
		if err != nil {
			return
		}
		for _, d := range IndexBlobs(cfg) {
			if d.Validate() != nil {
				t.Fatalf("IndexBlobs returned invalid digest %q", d)
			}
		}
	})
}

func TestKeepAlive(t *testing.T) {
	ctx := context.Background()
	e := newEconomyEnv(t)
	main := e.job(mainRef)
	e.saveBlob(main, "a")
	e.saveBlob(main, "b")
	e.saveIndex(main, mainRef, "a", "b", "gone")
	accessed := func() map[string]time.Time {
		m := map[string]time.Time{}
		for _, en := range e.emu.Entries("o/r") {
			m[en.Key] = en.LastAccessedAt
		}
		return m
	}
	before := accessed()
	n, err := KeepAlive(ctx, e.job(prRef, mainRef), "app", mainRef)
	if err != nil || n != 2 {
		t.Fatalf("KeepAlive = %d, %v; want 2 blobs touched", n, err)
	}
	after := accessed()
	for _, k := range blobKeys("a", "b") {
		if !after[k].After(before[k]) {
			t.Errorf("%s: last access %v not moved (was %v)", k, after[k], before[k])
		}
	}
}
