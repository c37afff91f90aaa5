package contentstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/labels"
	cerrdefs "github.com/containerd/errdefs"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bkcache/bkcache/ghacache"
)

// Options tune a store.
type Options struct {
	// Logf gets one line per finished large transfer; nil means silent.
	Logf func(format string, args ...any)
	// ParallelBlobs is how many blobs move at once, default 4 (each blob
	// is itself cut into parallel blocks by the ghacache client).
	ParallelBlobs int
	// Known lists layer digests already known to be in the cache (for
	// example from this run's imports): no exists-lookup is spent on them.
	Known *Known
}

func (o Options) withDefaults() Options {
	if o.ParallelBlobs <= 0 {
		o.ParallelBlobs = 4
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Known == nil {
		o.Known = &Known{}
	}
	return o
}

// Known is a set of blob digests known to be in the cache, shared by the
// stores of one build.
type Known struct{ m sync.Map }

// Add records that the cache holds d.
func (k *Known) Add(d digest.Digest) { k.m.Store(d, true) }

// Has reports whether d is known to be in the cache.
func (k *Known) Has(d digest.Digest) bool { _, ok := k.m.Load(d); return ok }

// largeBlob is the size from which a transfer gets its own log line.
const largeBlob = 8 << 20

// heldMax: JSON blobs up to this size (the cache config and manifest) are
// kept back until Finalize instead of being uploaded as layers.
const heldMax = 4 << 20

// Export is the content store of one gha export scope. Its ID for the
// BuildKit session is the spool directory (the local exporter's dest).
type Export struct {
	c          *ghacache.Client
	scope, ref string
	dir        string
	opt        Options
	ctx        context.Context // outlives the daemon's requests: uploads run in it
	cancel     context.CancelFunc

	mu       sync.Mutex
	blobs    map[digest.Digest]*spooled
	present  map[digest.Digest]*lookup
	skipped  map[digest.Digest]bool
	ingests  map[string]*spoolWriter
	uploads  sync.WaitGroup
	sem      chan struct{}
	span     counter
	uploaded int
	bytesUp  int64
}

type spooled struct {
	path string
	size int64
	held bool // JSON kept back until Finalize
	// set by the upload when it ends
	done chan struct{}
	err  error
	// uploaded: this export saved and finalized it. An "already exists"
	// answer is not that: it also answers another job's reservation
	// whose upload may never finish, so Finalize looks such a blob up.
	uploaded  bool
	elsewhere bool // the cache answered "already exists"
}

type lookup struct {
	done  chan struct{}
	found bool
	err   error
}

// NewExport returns the store for gha scope name scope, saving its index
// for the token's writable ref. dir is an empty directory for spooled
// blobs and is the store's session ID; ctx bounds the uploads.
func NewExport(ctx context.Context, c *ghacache.Client, scope, writeRef, dir string, opt Options) *Export {
	opt = opt.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	return &Export{
		c: c, scope: scope, ref: writeRef, dir: dir, opt: opt, ctx: ctx, cancel: cancel,
		blobs:   map[digest.Digest]*spooled{},
		present: map[digest.Digest]*lookup{},
		skipped: map[digest.Digest]bool{},
		ingests: map[string]*spoolWriter{},
		sem:     make(chan struct{}, opt.ParallelBlobs),
	}
}

// Dir is the store's spool directory and session ID.
func (e *Export) Dir() string { return e.dir }

// inCache reports whether the cache holds d, with one exact-key lookup per
// digest however often it is asked.
func (e *Export) inCache(ctx context.Context, d digest.Digest) (bool, error) {
	if e.opt.Known.Has(d) {
		return true, nil
	}
	e.mu.Lock()
	l, ok := e.present[d]
	if !ok {
		l = &lookup{done: make(chan struct{})}
		e.present[d] = l
		e.mu.Unlock()
		_, l.found, l.err = e.c.BlobEntry(e.ctx, d.String())
		if l.err != nil {
			// Not knowing is not "absent": retry on the next ask.
			e.mu.Lock()
			delete(e.present, d)
			e.mu.Unlock()
		}
		close(l.done)
	} else {
		e.mu.Unlock()
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	return l.found, l.err
}

// Info reports blobs spooled here and blobs the cache already holds; the
// daemon skips writing those.
func (e *Export) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	e.mu.Lock()
	b, ok := e.blobs[d]
	e.mu.Unlock()
	if ok {
		return content.Info{Digest: d, Size: b.size}, nil
	}
	found, err := e.inCache(ctx, d)
	if err != nil || !found {
		// A failed lookup means "write it": uploading twice is harmless.
		return content.Info{}, fmt.Errorf("blob %s: %w", d, cerrdefs.ErrNotFound)
	}
	e.mu.Lock()
	e.skipped[d] = true
	e.mu.Unlock()
	return content.Info{Digest: d}, nil
}

// Writer spools one blob. A blob the cache already holds is refused with
// ErrAlreadyExists, which the daemon reads as "skip".
func (e *Export) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	if wo.Desc.Digest != "" {
		if _, err := e.Info(ctx, wo.Desc.Digest); err == nil {
			return nil, fmt.Errorf("blob %s: %w", wo.Desc.Digest, cerrdefs.ErrAlreadyExists)
		}
	}
	f, err := os.CreateTemp(e.dir, "ingest-")
	if err != nil {
		return nil, err
	}
	w := &spoolWriter{e: e, f: f, ref: wo.Ref, digester: digest.Canonical.Digester(), started: time.Now()}
	if wo.Ref != "" {
		e.mu.Lock()
		e.ingests[wo.Ref] = w
		e.mu.Unlock()
	}
	return w, nil
}

// commit takes a complete spooled blob and starts its upload, unless it
// may be the cache config or manifest (small JSON): those wait for
// Finalize, which uploads them only if they turn out to be layers.
func (e *Export) commit(d digest.Digest, path string, size int64) {
	e.mu.Lock()
	if _, ok := e.blobs[d]; ok {
		e.mu.Unlock()
		_ = os.Remove(path)
		return
	}
	b := &spooled{path: path, size: size, done: make(chan struct{})}
	b.held = size <= heldMax && startsWithBrace(path)
	e.blobs[d] = b
	e.mu.Unlock()
	if !b.held {
		e.upload(d, b)
	}
}

func startsWithBrace(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var p [1]byte
	_, err = f.Read(p[:])
	return err == nil && p[0] == '{'
}

func (e *Export) upload(d digest.Digest, b *spooled) {
	e.uploads.Add(1)
	go func() {
		defer e.uploads.Done()
		defer close(b.done)
		select {
		case e.sem <- struct{}{}:
		case <-e.ctx.Done():
			b.err = e.ctx.Err()
			return
		}
		defer func() { <-e.sem }()
		start := time.Now()
		f, err := os.Open(b.path)
		if err != nil {
			b.err = err
			return
		}
		defer f.Close()
		err = e.c.Save(e.ctx, ghacache.BlobKey(d.String()), ghacache.BuildKitVersion(), f, b.size)
		end := time.Now()
		switch {
		case errors.Is(err, ghacache.ErrAlreadyExists):
			// Another job saved it, or is saving it: Finalize looks it up.
			b.elsewhere = true
			return
		case err != nil:
			b.err = err
			if e.ctx.Err() == nil { // else Discard stopped it: no news
				e.opt.Logf("gha: upload of %s failed: %v", d, err)
			}
			return
		default:
			e.span.span(start, end)
			e.mu.Lock()
			e.uploaded++
			e.bytesUp += b.size
			e.mu.Unlock()
			if b.size >= largeBlob {
				e.opt.Logf("gha: uploaded %s (%s) in %s", shortDigest(d), sizeText(b.size), end.Sub(start).Round(time.Millisecond))
			}
		}
		b.uploaded = true
		e.opt.Known.Add(d)
	}()
}

// Finalize waits for the uploads and writes the scope's index, byte for
// byte what BuildKit's gha exporter writes. It writes no index unless
// every layer the index names is in the cache. An export the daemon did
// not finish (no cache manifest) writes nothing.
func (e *Export) Finalize(ctx context.Context) (ExportStats, error) {
	st := ExportStats{Scope: e.scope, Ref: e.ref}
	defer e.cancel()
	defer e.cleanup()
	mfst, config, err := e.findManifest()
	if err != nil || mfst == nil {
		e.uploads.Wait()
		e.fill(&st)
		return st, err
	}
	descs := map[digest.Digest]ocispecs.Descriptor{}
	for _, d := range mfst {
		descs[d.Digest] = d
	}
	e.mu.Lock()
	for _, l := range config.Layers {
		if b, ok := e.blobs[l.Blob]; ok && b.held {
			b.held = false
			e.mu.Unlock()
			e.upload(l.Blob, b)
			e.mu.Lock()
		}
	}
	e.mu.Unlock()
	e.uploads.Wait()
	e.fill(&st)

	for _, l := range config.Layers {
		if _, ok := descs[l.Blob]; !ok {
			return st, fmt.Errorf("cache manifest has no descriptor for layer %s", l.Blob)
		}
	}
	stored := e.storedNow(ctx, config.Layers)
	e.fill(&st)
	var missing []string
	for i, l := range config.Layers {
		if !stored[i] {
			missing = append(missing, l.Blob.String())
			continue
		}
		la, err := layerAnnotations(descs[l.Blob])
		if err != nil {
			return st, err
		}
		config.Layers[i].Annotations = la
	}
	if len(missing) > 0 {
		st.Failed = missing
		return st, fmt.Errorf("%d of %d layers are not in the cache, so no index was written for scope %s", len(missing), len(config.Layers), e.scope)
	}
	dt, err := json.Marshal(config)
	if err != nil {
		return st, err
	}
	key, err := e.c.SaveIndex(ctx, e.scope, e.ref, dt)
	if err != nil {
		return st, fmt.Errorf("writing the index of scope %s: %w", e.scope, err)
	}
	st.IndexKey = key
	st.Size = int64(len(dt))
	for _, l := range config.Layers {
		st.Size += l.Annotations.Size
	}
	return st, nil
}

// storedNow reports, per layer, whether the cache holds it now: uploaded
// and finalized by this export, or found by a lookup made here. Nothing
// else counts, neither the Known set (a layer an import found may have
// been evicted since) nor an earlier lookup: the index is written right
// after, and must name only blobs that are there.
func (e *Export) storedNow(ctx context.Context, layers []cacheimporttypes.CacheLayer) []bool {
	out := make([]bool, len(layers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, l := range layers {
		e.mu.Lock()
		b, ok := e.blobs[l.Blob]
		e.mu.Unlock()
		elsewhere := false
		if ok {
			<-b.done
			if b.uploaded {
				out[i] = true
				continue
			}
			elsewhere = b.elsewhere
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = e.lookupNow(ctx, l.Blob, elsewhere)
			if out[i] && elsewhere {
				e.mu.Lock()
				e.skipped[l.Blob] = true // another job's upload finished
				e.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// reservedWait is how long Finalize waits for a blob another job reserved
// ("already exists" on upload) to be finalized: that job is usually
// uploading the same layer at the same time.
var reservedWait = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

// lookupNow looks d up, waiting for a reservation elsewhere to finish.
func (e *Export) lookupNow(ctx context.Context, d digest.Digest, elsewhere bool) bool {
	var waits []time.Duration
	if elsewhere {
		waits = reservedWait
	}
	for i := 0; ; i++ {
		_, found, err := e.c.BlobEntry(ctx, d.String())
		if err == nil && found {
			return true
		}
		if i >= len(waits) {
			return false
		}
		select {
		case <-time.After(waits[i]):
		case <-ctx.Done():
			return false
		}
	}
}

func (e *Export) fill(st *ExportStats) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st.Uploaded, st.BytesUp, st.Skipped = e.uploaded, e.bytesUp, len(e.skipped)
	st.UploadTime = e.span.elapsed()
}

// findManifest finds the cache manifest the local exporter wrote (an OCI
// index, Docker manifest list or OCI image manifest whose config is the
// cache config) and returns its layer descriptors and the cache config.
func (e *Export) findManifest() ([]ocispecs.Descriptor, *cacheimporttypes.CacheConfig, error) {
	e.mu.Lock()
	var held []*spooled
	for _, b := range e.blobs {
		if b.held {
			held = append(held, b)
		}
	}
	e.mu.Unlock()
	for _, b := range held {
		dt, err := os.ReadFile(b.path)
		if err != nil {
			return nil, nil, err
		}
		var m struct {
			MediaType string                `json:"mediaType"`
			Manifests []ocispecs.Descriptor `json:"manifests"`
			Config    ocispecs.Descriptor   `json:"config"`
			Layers    []ocispecs.Descriptor `json:"layers"`
		}
		if json.Unmarshal(dt, &m) != nil {
			continue
		}
		var layers []ocispecs.Descriptor
		var cfg ocispecs.Descriptor
		switch m.MediaType {
		case ocispecs.MediaTypeImageIndex, images.MediaTypeDockerSchema2ManifestList:
			for _, d := range m.Manifests {
				if d.MediaType == cacheimporttypes.CacheConfigMediaTypeV0 {
					cfg = d
				} else {
					layers = append(layers, d)
				}
			}
		case ocispecs.MediaTypeImageManifest:
			cfg, layers = m.Config, m.Layers
		default:
			continue
		}
		if cfg.MediaType != cacheimporttypes.CacheConfigMediaTypeV0 {
			continue
		}
		e.mu.Lock()
		cb, ok := e.blobs[cfg.Digest]
		e.mu.Unlock()
		if !ok {
			return nil, nil, fmt.Errorf("cache config %s was not written", cfg.Digest)
		}
		cdt, err := os.ReadFile(cb.path)
		if err != nil {
			return nil, nil, err
		}
		var config cacheimporttypes.CacheConfig
		if err := json.Unmarshal(cdt, &config); err != nil {
			return nil, nil, fmt.Errorf("cache config %s: %w", cfg.Digest, err)
		}
		return layers, &config, nil
	}
	return nil, nil, nil
}

// layerAnnotations is BuildKit's gha exporter's per-layer record.
func layerAnnotations(d ocispecs.Descriptor) (*cacheimporttypes.LayerAnnotations, error) {
	v, ok := d.Annotations[labels.LabelUncompressed]
	if !ok {
		return nil, fmt.Errorf("layer %s has no uncompressed digest annotation", d.Digest)
	}
	diffID, err := digest.Parse(v)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", d.Digest, err)
	}
	la := &cacheimporttypes.LayerAnnotations{DiffID: diffID, Size: d.Size, MediaType: d.MediaType}
	if v, ok := d.Annotations["buildkit/createdat"]; ok {
		var t time.Time
		if err := t.UnmarshalText([]byte(v)); err != nil {
			return nil, fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		la.CreatedAt = t.UTC()
	}
	return la, nil
}

// Discard ends an export whose build failed: it stops its uploads, waits
// for them to end, and only then deletes the spool they read from.
func (e *Export) Discard() {
	e.cancel()
	e.uploads.Wait()
	e.cleanup()
}

func (e *Export) cleanup() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.blobs {
		_ = os.Remove(b.path)
	}
}

// ReaderAt reads back a spooled blob.
func (e *Export) ReaderAt(ctx context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	e.mu.Lock()
	b, ok := e.blobs[desc.Digest]
	e.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, cerrdefs.ErrNotFound)
	}
	f, err := os.Open(b.path)
	if err != nil {
		return nil, err
	}
	return fileReaderAt{f, b.size}, nil
}

type fileReaderAt struct {
	*os.File
	size int64
}

func (f fileReaderAt) Size() int64 { return f.size }

// Update, Walk and Delete: the local exporter never calls them.
func (e *Export) Update(context.Context, content.Info, ...string) (content.Info, error) {
	return content.Info{}, cerrdefs.ErrNotImplemented
}
func (e *Export) Walk(context.Context, content.WalkFunc, ...string) error { return nil }
func (e *Export) Delete(context.Context, digest.Digest) error             { return cerrdefs.ErrNotImplemented }

// Status reports an open ingest.
func (e *Export) Status(_ context.Context, ref string) (content.Status, error) {
	e.mu.Lock()
	w, ok := e.ingests[ref]
	e.mu.Unlock()
	if !ok {
		return content.Status{}, fmt.Errorf("ingest %s: %w", ref, cerrdefs.ErrNotFound)
	}
	return w.Status()
}

// ListStatuses lists the open ingests.
func (e *Export) ListStatuses(context.Context, ...string) ([]content.Status, error) {
	e.mu.Lock()
	ws := make([]*spoolWriter, 0, len(e.ingests))
	for _, w := range e.ingests {
		ws = append(ws, w)
	}
	e.mu.Unlock()
	var out []content.Status
	for _, w := range ws {
		if s, err := w.Status(); err == nil {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

// Abort drops an open ingest.
func (e *Export) Abort(_ context.Context, ref string) error {
	e.mu.Lock()
	w, ok := e.ingests[ref]
	delete(e.ingests, ref)
	e.mu.Unlock()
	if ok {
		w.discard()
	}
	return nil
}

// spoolWriter writes one blob to a temporary file, hashing as it goes.
type spoolWriter struct {
	e        *Export
	f        *os.File
	ref      string
	digester digest.Digester
	offset   int64
	started  time.Time
	updated  time.Time
	closed   bool
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.digester.Hash().Write(p[:n])
	w.offset += int64(n)
	w.updated = time.Now()
	return n, err
}

func (w *spoolWriter) Digest() digest.Digest { return w.digester.Digest() }

func (w *spoolWriter) Status() (content.Status, error) {
	return content.Status{Ref: w.ref, Offset: w.offset, StartedAt: w.started, UpdatedAt: w.updated}, nil
}

func (w *spoolWriter) Truncate(size int64) error {
	if size != 0 {
		return fmt.Errorf("truncate to %d: %w", size, cerrdefs.ErrNotImplemented)
	}
	if err := w.f.Truncate(0); err != nil {
		return err
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	w.digester = digest.Canonical.Digester()
	w.offset = 0
	return nil
}

func (w *spoolWriter) Commit(_ context.Context, size int64, expected digest.Digest, _ ...content.Opt) error {
	defer w.forget()
	if err := w.f.Close(); err != nil {
		_ = os.Remove(w.f.Name())
		return err
	}
	w.closed = true
	d := w.digester.Digest()
	switch {
	case size > 0 && size != w.offset:
		_ = os.Remove(w.f.Name())
		return fmt.Errorf("blob size %d, expected %d: %w", w.offset, size, cerrdefs.ErrFailedPrecondition)
	case expected != "" && expected != d:
		_ = os.Remove(w.f.Name())
		return fmt.Errorf("blob digest %s, expected %s: %w", d, expected, cerrdefs.ErrFailedPrecondition)
	}
	w.e.commit(d, w.f.Name(), w.offset)
	return nil
}

func (w *spoolWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return w.f.Close()
}

func (w *spoolWriter) forget() {
	if w.ref == "" {
		return
	}
	w.e.mu.Lock()
	if w.e.ingests[w.ref] == w {
		delete(w.e.ingests, w.ref)
	}
	w.e.mu.Unlock()
}

func (w *spoolWriter) discard() {
	_ = w.Close()
	_ = os.Remove(w.f.Name())
}

func shortDigest(d digest.Digest) string {
	s := d.Encoded()
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

func sizeText(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}

var _ content.Store = (*Export)(nil)

// bytesReaderAt serves an in-memory blob.
type bytesReaderAt struct{ *bytes.Reader }

func (b bytesReaderAt) Close() error { return nil }
