package buildjob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/ghacache/contentstore"
	"github.com/bkcache/bkcache/ghacache/endpoint"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/ghaction"
	"github.com/bkcache/bkcache/internal/plan"
)

// The gha data plane: gha cache entries become BuildKit type=local entries
// whose content stores bkcache serves over the BuildKit session
// (ghacache/contentstore), so bkcache moves the bytes itself, in parallel, and the
// daemon never receives the runtime token or a signed URL. This is the
// path of dataplane=true, and of a default (or dataplane=endpoint) entry
// whose daemon cannot reach the cache endpoint (endpoint.go). The entry
// attribute dataplane=false keeps an entry on BuildKit's own gha backend.

// dataPlane is one build's data-plane state.
type dataPlane struct {
	root    string // temporary directory holding the stores' directories
	imports []*contentstore.Import
	exports []dataPlaneExport
	misses  []string // gha imports that found no index in any readable ref
	notes   []string // warnings found while setting up
	// skipped are the entries left out of the build because they could
	// not be set up: the build neither imports nor exports them.
	skipped []skippedEntry

	// The cache endpoint (dataplane=endpoint): its servers, the minted
	// tokens (to mask), and the entries sent to BuildKit in place of the
	// plan's.
	endpoints []*endpoint.Server
	secrets   []string
	sent      []endpointSent
}

// skippedEntry is a gha entry the data plane left out of the build.
type skippedEntry struct {
	dir    cacheentry.Direction
	index  int // in the request's Imports or Exports as they came in
	reason string
}

type dataPlaneExport struct {
	store       *contentstore.Export
	entry       string // redacted gha entry, for messages
	ignoreError bool
	// given is the gha entry as the request had it, local the entry that
	// replaced it, so a plan export can be found in what the build ran.
	given, local client.CacheOptionsEntry
	// left: BuildKit left the local export out, so there is no index to write.
	left bool
}

// usesDataPlane reports whether a gha entry goes through the data plane.
func usesDataPlane(e client.CacheOptionsEntry) bool {
	if e.Type != cacheentry.TypeGHA {
		return false
	}
	v, err := strconv.ParseBool(e.Attrs[cacheentry.DataPlaneKey])
	return err != nil || v // unset (or checked-invalid) means on
}

// withoutDataPlaneKey removes bkcache's own attribute before BuildKit sees
// an entry.
func withoutDataPlaneKey(es []client.CacheOptionsEntry) []client.CacheOptionsEntry {
	out := make([]client.CacheOptionsEntry, len(es))
	for i, e := range es {
		if _, ok := e.Attrs[cacheentry.DataPlaneKey]; ok {
			a := make(map[string]string, len(e.Attrs))
			for k, v := range e.Attrs {
				if k != cacheentry.DataPlaneKey {
					a[k] = v
				}
			}
			e.Attrs = a
		}
		out[i] = e
	}
	return out
}

// ghaClientConfig is the cache-service client config for a gha entry: the
// runner's environment, with what the entry sets taking precedence.
func ghaClientConfig(e client.CacheOptionsEntry, getenv func(string) string) ghacache.Config {
	cfg, _ := ghacache.ConfigFromEnv(getenv)
	a := e.Attrs
	if v := a["token"]; v != "" {
		cfg.Token = v
	}
	if v := a["url"]; v != "" {
		cfg.CacheURL = v
	}
	if v := a["url_v2"]; v != "" {
		cfg.ResultsURL = v
	}
	switch a["version"] {
	case "2":
		cfg.ServiceV2 = cfg.ResultsURL != ""
	case "1":
		cfg.ServiceV2 = false
	}
	// Large blocks, several at once: the toolkit's 64 MiB × 8 is too much
	// memory for a builder next to a build; 32 MiB × 4 streams from the
	// spool file without buffering.
	cfg.BlockSize = 32 << 20
	cfg.UploadConcurrency = 4
	return cfg
}

func ghaScope(e client.CacheOptionsEntry) string {
	if s := e.Attrs["scope"]; s != "" {
		return s
	}
	return "buildkit"
}

// startDataPlane rewrites req's data-plane gha entries into type=local
// entries served by ghacache/contentstore stores. A gha import resolves the index of
// every ref the token may read, in parallel; refs without one are misses.
// Setup failures become warnings (notes) and drop the entry, unless an
// export says ignore-error=false.
func startDataPlane(ctx context.Context, req *buildkit.Request, trust plan.Trust, getenv func(string) string, reach reachFunc, logf func(string, ...any)) (*dataPlane, error) {
	dp := &dataPlane{}
	dp.startEndpoints(ctx, req, trust, getenv, reach, logf)
	var todoIn, todoOut []int // positions in req.Imports, req.Exports
	var keepIn, keepOut []client.CacheOptionsEntry
	for i, e := range req.Imports {
		if usesDataPlane(e) {
			todoIn = append(todoIn, i)
		} else {
			keepIn = append(keepIn, e)
		}
	}
	for i, e := range req.Exports {
		if usesDataPlane(e) {
			todoOut = append(todoOut, i)
		} else {
			keepOut = append(keepOut, e)
		}
	}
	keepIn, keepOut = withoutDataPlaneKey(keepIn), withoutDataPlaneKey(keepOut)
	if len(todoIn)+len(todoOut) == 0 {
		req.Imports, req.Exports = keepIn, keepOut
		return dp, nil
	}
	// Blobs are spooled here on their way up: the runner's temp directory
	// when there is one (it is cleaned after the job).
	root, err := os.MkdirTemp(getenv("RUNNER_TEMP"), "bkcache-gha-")
	if err != nil {
		return nil, fmt.Errorf("gha data plane: %w", err)
	}
	dp.root = root
	stores := map[string]content.Store{}
	known := &contentstore.Known{}
	opt := contentstore.Options{Logf: logf, Known: known}

	var mu sync.Mutex
	var wg sync.WaitGroup
	type found struct {
		im         *contentstore.Import
		entry, ref int // positions: the import entry, the ref in the token
	}
	var got []found
	for n, at := range todoIn {
		e := req.Imports[at]
		name := redactedEntry(e)
		c, refs, err := ghaClient(e, getenv)
		if err != nil {
			dp.skipped = append(dp.skipped, skippedEntry{cacheentry.Import, at, err.Error()})
			continue
		}
		var hits, failed int
		for i, ref := range refs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				im, err := contentstore.Resolve(ctx, c, ghaScope(e), ref.Ref, opt)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					failed++
					dp.notes = append(dp.notes, fmt.Sprintf("cache import %s from %s failed, building without it: %v", name, refText(ref.Ref), err))
				case im != nil:
					hits++
					got = append(got, found{im, n, i})
				}
			}()
		}
		wg.Wait()
		if hits == 0 && failed == 0 {
			dp.misses = append(dp.misses, name)
		}
	}
	// Keep the token's order (its own ref first), as BuildKit's gha
	// importer does.
	sort.Slice(got, func(i, j int) bool {
		if got[i].entry != got[j].entry {
			return got[i].entry < got[j].entry
		}
		return got[i].ref < got[j].ref
	})
	for _, f := range got {
		dir, err := importDir(root, f.im)
		if err != nil {
			dp.notes = append(dp.notes, fmt.Sprintf("cache import gha from %s skipped: %v", refText(f.im.Ref()), err))
			continue
		}
		d, _ := f.im.Manifest()
		stores[dir] = f.im
		dp.imports = append(dp.imports, f.im)
		keepIn = append(keepIn, client.CacheOptionsEntry{Type: cacheentry.TypeLocal, Attrs: map[string]string{"src": dir, "digest": d.String()}})
	}

	for _, at := range todoOut {
		e := req.Exports[at]
		name := redactedEntry(e)
		ignoreError := e.Attrs["ignore-error"] != "false"
		// The index is a write bkcache makes itself: it goes to the ref
		// the plan's one trust decision allows, or nowhere.
		writeRef, why := trust.GHAWriteRef(ghaClientConfig(e, getenv).Token)
		var c *ghacache.Client
		var err error
		if why != "" {
			err = errors.New(why)
		} else {
			c, _, err = ghaClient(e, getenv)
		}
		if err != nil {
			if !ignoreError {
				return dp, fmt.Errorf("cache export %s (ignore-error=false): %w", name, err)
			}
			dp.skipped = append(dp.skipped, skippedEntry{cacheentry.Export, at, err.Error()})
			continue
		}
		dir, err := os.MkdirTemp(root, "export-")
		if err != nil {
			return dp, fmt.Errorf("gha data plane: %w", err)
		}
		st := contentstore.NewExport(ctx, c, ghaScope(e), writeRef, dir, opt)
		stores[dir] = st
		attrs := map[string]string{"dest": dir}
		for _, k := range []string{"mode", "ignore-error"} {
			if v, ok := e.Attrs[k]; ok {
				attrs[k] = v
			}
		}
		local := client.CacheOptionsEntry{Type: cacheentry.TypeLocal, Attrs: attrs}
		dp.exports = append(dp.exports, dataPlaneExport{store: st, entry: name, ignoreError: ignoreError, given: e, local: local})
		keepOut = append(keepOut, local)
	}
	req.Imports, req.Exports, req.CacheStores = keepIn, keepOut, stores
	return dp, nil
}

// ran is p as the build runs it: the entries the data plane skipped move
// from the imports and exports to Dropped, with their reason, so that the
// outputs and the job summary never list them as used. It returns the new
// drops too, for the log. The positions in skipped are p's, since the
// request's entries were made from p's in order.
func (dp *dataPlane) ran(p planned) (planned, []plan.Dropped) {
	if dp == nil || len(dp.skipped) == 0 {
		return p, nil
	}
	skip := map[cacheentry.Direction]map[int]string{cacheentry.Import: {}, cacheentry.Export: {}}
	for _, s := range dp.skipped {
		skip[s.dir][s.index] = s.reason
	}
	keep := func(dir cacheentry.Direction, es []cacheentry.Entry) (kept []cacheentry.Entry, dropped []plan.Dropped) {
		for i, e := range es {
			if why, ok := skip[dir][i]; ok {
				dropped = append(dropped, plan.Dropped{Dir: dir, Entry: e, Reason: why})
				continue
			}
			kept = append(kept, e)
		}
		return kept, dropped
	}
	imports, droppedIn := keep(cacheentry.Import, p.cache.Imports)
	exports, droppedOut := keep(cacheentry.Export, p.cache.Exports)
	drops := append(droppedIn, droppedOut...)
	p.cache.Imports, p.cache.Exports = imports, exports
	p.cache.Dropped = append(slices.Clone(p.cache.Dropped), drops...)
	return p, drops
}

// ranIn is p with only the cache entries the build ran (res.Imports and
// res.Exports): BuildKit leaves out, with a warning, an entry it cannot
// use, and that entry must not be listed as used. A data plane import was
// tried by the data plane itself, index lookups and all. A data plane
// export left out is marked so that finish writes no index for it.
func (dp *dataPlane) ranIn(p planned, res buildkit.Result) planned {
	same := func(a client.CacheOptionsEntry) func(client.CacheOptionsEntry) bool {
		return func(b client.CacheOptionsEntry) bool { return a.Type == b.Type && maps.Equal(a.Attrs, b.Attrs) }
	}
	// request is what the request held for e before the data plane, and
	// after it without bkcache's own attribute.
	request := func(e cacheentry.Entry) (given, req client.CacheOptionsEntry) {
		given = cacheentry.As[client.CacheOptionsEntry]([]cacheentry.Entry{e})[0]
		return given, withoutDataPlaneKey([]client.CacheOptionsEntry{given})[0]
	}
	var imports, exports []cacheentry.Entry
	// An entry sent to the endpoint went to BuildKit's own gha backend:
	// BuildKit's answer says whether it ran.
	for _, e := range p.cache.Imports {
		given, req := request(e)
		sent, viaEndpoint := dp.sentFor(given)
		if viaEndpoint {
			given, req = sent, sent
		}
		if (!viaEndpoint && usesDataPlane(given)) || slices.ContainsFunc(res.Imports, same(req)) {
			imports = append(imports, e)
		}
	}
	for _, e := range p.cache.Exports {
		given, req := request(e)
		sent, viaEndpoint := dp.sentFor(given)
		if viaEndpoint {
			given, req = sent, sent
		}
		if !viaEndpoint && usesDataPlane(given) {
			i := slices.IndexFunc(dp.exports, func(x dataPlaneExport) bool { return same(given)(x.given) })
			if i < 0 {
				continue
			}
			req = dp.exports[i].local
			dp.exports[i].left = !slices.ContainsFunc(res.Exports, same(req))
		}
		if slices.ContainsFunc(res.Exports, same(req)) {
			exports = append(exports, e)
		}
	}
	p.cache.Imports, p.cache.Exports = imports, exports
	return p
}

// refText names a token scope's ref in a message: a hand-made token can
// carry an empty one, which must not read as a missing word.
func refText(ref string) string {
	if ref == "" {
		return `the empty ref ""`
	}
	return ref
}

// redactedEntry names a gha entry by its scope: the runtime values the
// runner filled in (token, URLs, version) say nothing to the user.
func redactedEntry(e client.CacheOptionsEntry) string {
	return "type=gha,scope=" + ghaScope(e)
}

// ghaClient builds the cache-service client of a gha entry and reads the
// token's ref scopes.
func ghaClient(e client.CacheOptionsEntry, getenv func(string) string) (*ghacache.Client, []ghacache.TokenScope, error) {
	c, err := ghacache.NewClient(ghaClientConfig(e, getenv))
	if err != nil {
		return nil, nil, err
	}
	refs, err := c.Scopes()
	if err != nil {
		return nil, nil, err
	}
	return c, refs, nil
}

// importDir makes the directory an import store is known by. BuildKit's
// client checks on disk that src holds the digest to import (client/solve.go
// parseCacheOptions) before it passes the entry on, so the small manifest
// is written there too; the layers are not.
func importDir(root string, im *contentstore.Import) (string, error) {
	dir, err := os.MkdirTemp(root, "import-")
	if err != nil {
		return "", err
	}
	cs, err := contentlocal.NewStore(dir)
	if err != nil {
		return "", err
	}
	d, dt := im.Manifest()
	desc := ocispecs.Descriptor{Digest: d, Size: int64(len(dt))}
	if err := content.WriteBlob(context.Background(), cs, d.String(), bytes.NewReader(dt), desc); err != nil {
		return "", err
	}
	return dir, nil
}

// dataPlaneResult is what the data plane did, for the log and summary.
type dataPlaneResult struct {
	Exports  []contentstore.ExportStats
	Imports  []contentstore.ImportStats
	Warnings []string
	UpTime   time.Duration
	// Endpoints are the cache endpoints' counters, when the build's gha
	// entries went through them.
	Endpoints []endpoint.Stats
}

// finish writes the export indexes (after every blob is in the cache) and
// collects the transfer figures. An export with ignore-error=false that
// could not write its index is an error.
func (dp *dataPlane) finish(ctx context.Context, built bool) (dataPlaneResult, error) {
	var out dataPlaneResult
	var failed error
	for _, ex := range dp.exports {
		if !built || ex.left {
			// No index will name what it uploaded; and close deletes the
			// spool its uploads read from, so they must end first.
			ex.store.Discard()
			continue
		}
		st, err := ex.store.Finalize(ctx)
		out.Exports = append(out.Exports, st)
		switch {
		case err != nil && ex.ignoreError:
			out.Warnings = append(out.Warnings, fmt.Sprintf("cache export %s failed, the build is kept: %v", ex.entry, err))
		case err != nil:
			failed = errors.Join(failed, fmt.Errorf("cache export %s failed (ignore-error=false): %w", ex.entry, err))
		}
	}
	for _, im := range dp.imports {
		out.Imports = append(out.Imports, im.Stats())
	}
	for _, s := range dp.endpoints {
		out.Endpoints = append(out.Endpoints, s.Stats())
	}
	return out, failed
}

// evictedDuringBuild reports whether a layer an import served was evicted
// while the daemon read it, after the index was resolved (layers evicted
// before are left out of the import). BuildKit's local importer, unlike
// its gha importer, does not check that a layer exists before it uses a
// cached result (worker FromRemote asks Info of the descriptor, not of
// the store), so such a layer fails the solve, and the failed lazy record
// stays in that builder.
func (dp *dataPlane) evictedDuringBuild() bool {
	for _, im := range dp.imports {
		if im.Stats().Gone > 0 {
			return true
		}
	}
	return false
}

// evictedHint explains a build that failed on an eviction.
const evictedHint = "gha cache layers were evicted between bkcache's check and the build's read; this builder now fails builds needing them (\"lease … not found\") until buildkitd restarts: run the job again on a fresh builder, or set dataplane=false"

// close removes the stores' directories.
func (dp *dataPlane) close() {
	for _, s := range dp.endpoints {
		_ = s.Close()
	}
	for _, im := range dp.imports {
		_ = im.Close()
	}
	if dp.root != "" {
		_ = os.RemoveAll(dp.root)
	}
}

// describe gives the log lines and the summary's transfer lines.
func (r dataPlaneResult) describe() []string {
	var lines []string
	for _, e := range r.Exports {
		line := fmt.Sprintf("gha export scope %s (%s): %d blobs uploaded (%s in %s), %d already in the cache",
			e.Scope, refText(e.Ref), e.Uploaded, bytesText(e.BytesUp), e.UploadTime.Round(10*time.Millisecond), e.Skipped)
		if e.IndexKey != "" {
			line += ", index " + e.IndexKey
		} else {
			line += ", no index written"
		}
		lines = append(lines, line)
	}
	for _, i := range r.Imports {
		line := fmt.Sprintf("gha import scope %s from %s: served %d of %d layers (%s, %s reading)",
			i.Scope, refText(i.Ref), i.BlobsServed, i.Layers, bytesText(i.BytesDown), i.ReadTime.Round(10*time.Millisecond))
		if i.Evicted > 0 {
			line += fmt.Sprintf("; %d evicted layers left out", i.Evicted)
		}
		if i.Gone > 0 {
			line += fmt.Sprintf("; %d layers evicted during the build", i.Gone)
		}
		lines = append(lines, line)
	}
	return append(lines, endpointLines(r.Endpoints)...)
}

// servedBy names the import scopes whose layers the daemon read; when it
// read none (cached steps whose layers were not needed), the scopes whose
// index was imported.
func (r dataPlaneResult) servedBy() string {
	var read, indexed []string
	for _, i := range r.Imports {
		if i.BlobsServed > 0 {
			read = append(read, fmt.Sprintf("%s (%d layers)", refText(i.Ref), i.BlobsServed))
		}
		indexed = append(indexed, refText(i.Ref)+" (index)")
	}
	if len(read) > 0 {
		return strings.Join(read, ", ")
	}
	return strings.Join(indexed, ", ")
}

// refDataPlane is the dataplane value of a summary row's entry text, and
// whether it has one.
func refDataPlane(ref string) (string, bool) {
	for _, kv := range strings.Split(ref, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.TrimSpace(k) == cacheentry.DataPlaneKey {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// addToSummary puts the transfers into the job summary.
func (r dataPlaneResult) addToSummary(s *ghaction.Summary, cached int) {
	if len(s.Builds) == 0 {
		return
	}
	bs := &s.Builds[0]
	bs.Transfers = append(bs.Transfers, r.describe()...)
	// The gha export rows, in plan order, are the data plane's exports.
	next := 0
	for i := range bs.Exports {
		ref := bs.Exports[i].Ref
		dp, set := refDataPlane(ref)
		viaEndpoint := len(r.Endpoints) > 0 && (!set || dp == cacheentry.DataPlaneEndpoint)
		on, err := strconv.ParseBool(dp)
		stock := set && err == nil && !on // dataplane=false
		if !strings.HasPrefix(ref, "type=gha") || stock || viaEndpoint || next >= len(r.Exports) {
			continue
		}
		if st := r.Exports[next]; st.IndexKey != "" {
			bs.Exports[i].Size = st.Size
		}
		next++
	}
	if cached > 0 && len(r.Imports) > 0 {
		bs.HitScope = r.servedBy()
	}
}
