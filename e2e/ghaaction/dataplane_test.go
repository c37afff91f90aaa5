package ghaaction

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/testenv"
)

// stockGHA is the cache line that keeps BuildKit's own gha backend.
const stockGHA = "type=gha,dataplane=false"

// sessionGHA is the cache line that pins the session data plane
// (ghacache/contentstore): the default is the cache endpoint.
const sessionGHA = "type=gha,dataplane=true"

// sessionInputs are buildInputs with the session data plane pinned; a
// "cache" in extra replaces it.
func sessionInputs(addr, dir string, extra ...string) map[string]string {
	return buildInputs(addr, dir, append([]string{"cache", sessionGHA}, extra...)...)
}

// recordingProxy forwards a unix socket to buildkitd and keeps every byte
// the client sends: everything the daemon receives from bkcache (the
// solve request with its cache attributes and frontend attributes, and
// the session streams).
type recordingProxy struct {
	addr string
	mu   sync.Mutex
	sent bytes.Buffer
}

func newRecordingProxy(t *testing.T, daemon string) *recordingProxy {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "proxy.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &recordingProxy{addr: "unix://" + sock}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("unix", strings.TrimPrefix(daemon, "unix://"))
			if err != nil {
				c.Close()
				continue
			}
			go func() {
				defer d.Close()
				_, _ = io.Copy(io.MultiWriter(d, p), c)
			}()
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, d)
			}()
		}
	}()
	return p
}

func (p *recordingProxy) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent.Write(b)
}

func (p *recordingProxy) received() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent.String()
}

// requireDataPlane checks the log shows bkcache moved the bytes.
func requireDataPlane(t *testing.T, r result, what string) {
	t.Helper()
	if !strings.Contains(r.stdout, "gha "+what+" scope buildkit") {
		t.Errorf("no data-plane %s line in the log:\n%s", what, r.stdout)
	}
}

// TestDataPlaneColdThenWarm: a cold build exports through the data plane
// (blobs then one index, in BuildKit's gha format); a fresh builder then
// finds every step cached, served by bkcache, and the summary says which
// ref scope served it. The daemon never receives the runtime token, a
// signed URL, or a gha url/token attribute: a recording proxy between
// bkcache and buildkitd sees everything it is sent.
func TestDataPlaneColdThenWarm(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	s := startEmulator(t, 1)
	dir := writeContext(t, env)

	tok := s.token(t, mainRef)
	proxy := newRecordingProxy(t, testenv.NewBuildkitd(t))
	r := runAction(t, s, tok, pushMain, sessionInputs(proxy.addr, dir))
	mustSucceed(t, r)
	requireDataPlane(t, r, "export")
	if cached, steps := hits(t, r); cached != 0 || steps != 3 {
		t.Errorf("cold build: %d of %d cached, want 0 of 3", cached, steps)
	}
	var index, blobs, records int
	for _, e := range s.emu.Entries(repo) {
		switch {
		case strings.HasPrefix(e.Key, "index-buildkit-1-"):
			index++
		case strings.HasPrefix(e.Key, "buildkit-blob-1-sha256:"):
			blobs++
		case strings.HasPrefix(e.Key, ghacache.MountSeriesKey("buildkit", "bkcache-build-record-last")):
			records++ // the build record (why it missed), next to the cache
		default:
			t.Errorf("unexpected entry %s", e.Key)
		}
	}
	if index != 1 || blobs < 3 || records != 1 {
		t.Errorf("want 1 index, ≥3 blobs and 1 build record, got %d, %d and %d:\n%s", index, blobs, records, describe(s.emu.Entries(repo)))
	}
	sent := proxy.received()
	if !strings.Contains(sent, "dockerfile.v0") {
		t.Fatalf("the proxy recorded nothing useful (%d bytes)", len(sent))
	}
	for _, bad := range []string{tok, "url_v2", s.url, "sig=", "\"token\""} {
		if strings.Contains(sent, bad) {
			t.Errorf("buildkitd received %q", bad)
		}
	}

	// A new PR on a fresh builder: all cached, through bkcache.
	proxy2 := newRecordingProxy(t, testenv.NewBuildkitd(t))
	tok2 := s.token(t, prRef, baseRef, mainRef)
	r = runAction(t, s, tok2, prSame, sessionInputs(proxy2.addr, dir, "outputs", "type=local,dest="+t.TempDir()))
	mustSucceed(t, r)
	requireDataPlane(t, r, "import")
	if cached, steps := hits(t, r); cached != steps || steps != 3 {
		t.Errorf("warm build: %d of %d cached, want 3 of 3\n%s", cached, steps, r.stdout)
	}
	sum := r.files["GITHUB_STEP_SUMMARY"]
	t.Logf("job summary:\n%s", sum)
	if !strings.Contains(sum, "Cache transfers") || !strings.Contains(sum, mainRef) {
		t.Errorf("the summary does not say which scope served the hits:\n%s", sum)
	}
	if sent := proxy2.received(); strings.Contains(sent, tok2) || strings.Contains(sent, s.url) {
		t.Errorf("buildkitd received the token or the cache URL on import")
	}
}

// TestDataPlaneStockCompat: BuildKit's own gha backend and the data plane
// read each other's caches, in the real buildkitd, both ways.
func TestDataPlaneStockCompat(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	for _, tc := range []struct{ name, export, imp, wantLog string }{
		{"stock export to data-plane import", stockGHA, sessionGHA, "import"},
		{"data-plane export to stock import", sessionGHA, stockGHA, "export"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startEmulator(t, 1)
			dir := writeContext(t, env)
			r := runAction(t, s, s.token(t, mainRef), pushMain, sessionInputs(testenv.NewBuildkitd(t), dir, "cache", tc.export))
			mustSucceed(t, r)
			if !hasIndex(entriesByScope(s)[mainRef]) {
				t.Fatalf("no index after the export:\n%s\n%s", describe(s.emu.Entries(repo)), r.stdout)
			}
			if tc.wantLog == "export" {
				requireDataPlane(t, r, "export")
			}
			r = runAction(t, s, s.token(t, prRef, baseRef, mainRef), prSame,
				sessionInputs(testenv.NewBuildkitd(t), dir, "cache", tc.imp, "outputs", "type=local,dest="+t.TempDir()))
			mustSucceed(t, r)
			if tc.wantLog == "import" {
				requireDataPlane(t, r, "import")
			}
			if cached, steps := hits(t, r); cached != steps || steps != 3 {
				t.Errorf("%d of %d cached, want 3 of 3\n%s", cached, steps, r.stdout)
			}
		})
	}
}

// TestDataPlaneReexport: exporting an unchanged build again uploads no
// blob, only a new index.
func TestDataPlaneReexport(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	s := startEmulator(t, 1)
	dir := writeContext(t, env)
	mustSucceed(t, runAction(t, s, s.token(t, mainRef), pushMain, sessionInputs(testenv.NewBuildkitd(t), dir)))
	before := len(s.emu.Entries(repo))
	r := runAction(t, s, s.token(t, mainRef), pushMain, sessionInputs(testenv.NewBuildkitd(t), dir))
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "0 blobs uploaded") {
		t.Errorf("re-export uploaded blobs:\n%s", r.stdout)
	}
	if after := len(s.emu.Entries(repo)); after != before+1 {
		t.Errorf("re-export: %d entries → %d, want one more (the new index)", before, after)
	}
}

// TestDataPlaneFaults: with faults on, the build never fails, and no index
// ever names a blob the cache does not hold.
func TestDataPlaneFaults(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	for _, tc := range []struct {
		name   string
		faults emulator.Faults
	}{
		{"429 upload rate", emulator.Faults{UploadsPerMinute: 1}},
		{"5xx burst", emulator.Faults{FailNext: 8, FailStatus: 503}},
		{"expired URLs", emulator.Faults{ExpiredURLs: true}},
		{"quota evicts mid-export", emulator.Faults{QuotaBytes: 64 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startEmulator(t, 60)
			dir := writeContext(t, env)
			if err := s.emu.SetFaults(tc.faults); err != nil {
				t.Fatal(err)
			}
			r := runAction(t, s, s.token(t, mainRef), pushMain, sessionInputs(testenv.NewBuildkitd(t), dir))
			mustSucceed(t, r)
			t.Logf("warnings:\n%s", strings.Join(warnings(r.stdout), "\n"))
			requireIndexComplete(t, s)
			// Import with the same faults: still never a failure.
			r = runAction(t, s, s.token(t, prRef, mainRef), prSame,
				sessionInputs(testenv.NewBuildkitd(t), dir, "outputs", "type=local,dest="+t.TempDir()))
			mustSucceed(t, r)
			if _, steps := hits(t, r); steps != 3 {
				t.Errorf("cache-steps = %d, want 3", steps)
			}
		})
	}
}

// requireIndexComplete: the newest index in main names only layers the
// emulator holds (or, under a quota, held when it was written: eviction
// afterwards is GitHub's doing and the importer's to survive).
func requireIndexComplete(t *testing.T, s *cacheService) {
	t.Helper()
	if !hasIndex(entriesByScope(s)[mainRef]) {
		return // no index is allowed; a dangling one is not
	}
	have := map[string]bool{}
	for _, e := range s.emu.Entries(repo) {
		have[e.Key] = true
	}
	if s.emu.Faults().QuotaBytes > 0 {
		return
	}
	idx := readIndex(t, s, mainRef)
	for _, l := range idx {
		if !have["buildkit-blob-1-"+l] {
			t.Errorf("the index names %s, which the cache does not hold", l)
		}
	}
}

// readIndex returns the layer digests of ref's newest index, read with
// bkcache's client as a job on ref would.
func readIndex(t *testing.T, s *cacheService, ref string) []string {
	t.Helper()
	if err := s.emu.SetFaults(emulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	c, err := ghacache.NewClient(ghacache.Config{ResultsURL: s.url + "/", Token: s.token(t, ref), ServiceV2: true})
	if err != nil {
		t.Fatal(err)
	}
	dt, _, ok, err := c.LoadIndex(context.Background(), "buildkit", ref)
	if err != nil || !ok {
		t.Fatalf("reading %s's index: found %v, %v", ref, ok, err)
	}
	var cfg cacheimporttypes.CacheConfig
	if err := json.Unmarshal(dt, &cfg); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range cfg.Layers {
		if l.Annotations == nil || l.Annotations.DiffID == "" {
			t.Errorf("layer %s has no annotations: not BuildKit's gha format", l.Blob)
		}
		out = append(out, l.Blob.String())
	}
	return out
}

// TestDataPlaneEvictedDuringBuild: every layer of main's index is evicted
// right after bkcache looks it up (the emulator's EvictAfterLookup fault,
// as a quota eviction between lookup and download would). BuildKit's local
// importer reads a hit's layers inside the cache manager's GetByBlob, and
// a failed read there leaks a record that fails every later build on that
// builder ("lease … not found"). bkcache reads each layer's first byte
// before it serves the index, so the evicted layers are left out: the
// build is a miss and succeeds, and the next build on the same builder
// succeeds too.
func TestDataPlaneEvictedDuringBuild(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	s := startEmulator(t, 1)
	dir := writeContext(t, env)
	mustSucceed(t, runAction(t, s, s.token(t, mainRef), pushMain, sessionInputs(testenv.NewBuildkitd(t), dir)))

	if err := s.emu.SetFaults(emulator.Faults{EvictAfterLookup: ghacache.BlobKey("")}); err != nil {
		t.Fatal(err)
	}
	builder := testenv.NewBuildkitd(t)
	// A local output makes BuildKit read every layer of the cached steps.
	r := runAction(t, s, s.token(t, prRef, baseRef, mainRef), prSame,
		sessionInputs(builder, dir, "outputs", "type=local,dest="+t.TempDir()))
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "gha import scope buildkit from "+mainRef) || !strings.Contains(r.stdout, "evicted layers left out") {
		t.Errorf("the log does not say the evicted layers were left out:\n%s", r.stdout)
	}
	if cached, steps := hits(t, r); steps != 3 || cached == steps {
		t.Errorf("%d of %d cached: the evicted layers cannot have served hits", cached, steps)
	}
	if !hasIndex(entriesByScope(s)[prRef]) {
		t.Errorf("the build exported no index:\n%s", describe(s.emu.Entries(repo)))
	}

	// The same builder again: not poisoned, and its own cache serves the steps.
	r = runAction(t, s, s.token(t, prRef, baseRef, mainRef), prSame,
		sessionInputs(builder, dir, "outputs", "type=local,dest="+t.TempDir()))
	mustSucceed(t, r)
	if cached, steps := hits(t, r); cached != steps || steps != 3 {
		t.Errorf("second build on the same builder: %d of %d cached, want 3 of 3\n%s", cached, steps, r.stdout)
	}
}

// TestDataPlaneOCIDirOutput: an oci or docker output with tar=false (an
// image layout directory) works with the data plane on: the image is in
// the directory and tagged in its index.json, and the cache is exported.
func TestDataPlaneOCIDirOutput(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	for _, typ := range []string{"oci", "docker"} {
		t.Run(typ, func(t *testing.T) {
			s := startEmulator(t, 1)
			dir := writeContext(t, env)
			out := filepath.Join(t.TempDir(), "layout")
			r := runAction(t, s, s.token(t, mainRef), pushMain,
				sessionInputs(testenv.NewBuildkitd(t), dir, "outputs", "type="+typ+",tar=false,dest="+out))
			mustSucceed(t, r)
			requireDataPlane(t, r, "export")
			dt, err := os.ReadFile(filepath.Join(out, "index.json"))
			if err != nil {
				t.Fatalf("no index.json in the layout: %v\n%s", err, r.stdout)
			}
			var idx ocispecs.Index
			if err := json.Unmarshal(dt, &idx); err != nil || len(idx.Manifests) != 1 {
				t.Fatalf("index.json %s: %v", dt, err)
			}
			m := idx.Manifests[0].Digest
			if _, err := os.Stat(filepath.Join(out, "blobs", m.Algorithm().String(), m.Encoded())); err != nil {
				t.Errorf("the image manifest is not in the layout: %v", err)
			}
			if !hasIndex(entriesByScope(s)[mainRef]) {
				t.Errorf("no cache index exported:\n%s", describe(s.emu.Entries(repo)))
			}
		})
	}
}
