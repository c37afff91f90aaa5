package contentstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/labels"
	cerrdefs "github.com/containerd/errdefs"
	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/bkcache/bkcache/ghacache"
)

// Import is the content store of one import scope: the gha index one ref
// wrote for a scope name. It serves the OCI index BuildKit's local
// importer reads (Digest), the cache config, and the layers, lazily.
type Import struct {
	c          *ghacache.Client
	scope, ref string
	key        string
	opt        Options

	manifest digest.Digest
	mem      map[digest.Digest][]byte
	layers   map[digest.Digest]*layer

	mu    sync.Mutex
	stats ImportStats
}

type layer struct {
	desc    ocispecs.Descriptor
	entry   ghacache.Entry
	ranges  *ghacache.BlobRanges // from the probe, so a refreshed URL carries over
	read    bool
	fetched int64
	took    time.Duration
	// reader is shared by every ReaderAt of this layer: containerd's
	// content server opens one per Read RPC (one per 1 MiB the daemon
	// reads), and the read-ahead must carry over from one to the next.
	reader *rangeReader
}

// Resolve reads the index that ref wrote for gha scope name scope, and
// looks every layer it names up and reads its first byte, in parallel. It
// returns nil (and no error) when ref has no index. Layers gone from the
// cache are left out of the served manifest, so BuildKit finds no cached
// result for the steps that need them instead of failing (see readable).
func Resolve(ctx context.Context, c *ghacache.Client, scope, ref string, opt Options) (*Import, error) {
	opt = opt.withDefaults()
	dt, key, found, err := c.LoadIndex(ctx, scope, ref)
	if err != nil || !found {
		return nil, err
	}
	var config cacheimporttypes.CacheConfig
	if err := json.Unmarshal(dt, &config); err != nil {
		return nil, fmt.Errorf("index %s: %w", key, err)
	}
	im := &Import{
		c: c, scope: scope, ref: ref, key: key, opt: opt,
		mem:    map[digest.Digest][]byte{},
		layers: map[digest.Digest]*layer{},
	}
	im.stats = ImportStats{Scope: scope, Ref: ref, IndexKey: key, Layers: len(config.Layers)}

	// Every descriptor is checked before any lookup starts, so that an
	// error return never leaves lookups running behind it.
	ds := make([]ocispecs.Descriptor, len(config.Layers))
	for i, l := range config.Layers {
		d, err := layerDescriptor(l)
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", key, err)
		}
		ds[i] = d
	}
	descs := make([]*layer, len(config.Layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, l := range config.Layers {
		g.Go(func() error {
			e, ok, err := c.BlobEntry(gctx, l.Blob.String())
			if err != nil || !ok {
				return err
			}
			r := c.Ranges(e)
			if ok, err = readable(gctx, r); err != nil || !ok {
				return err
			}
			descs[i] = &layer{desc: ds[i], entry: e, ranges: r}
			opt.Known.Add(l.Blob)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("index %s: looking its layers up: %w", key, err)
	}
	// The served manifest: an OCI index of the layers still there plus the
	// cache config, as BuildKit's local exporter writes it. The config is
	// the gha index itself (BuildKit's parser ignores the annotations).
	idx := ocispecs.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispecs.MediaTypeImageIndex}
	for i, l := range descs {
		if l == nil {
			im.stats.Evicted++
			continue
		}
		if _, dup := im.layers[l.desc.Digest]; dup {
			continue
		}
		im.layers[l.desc.Digest] = descs[i]
		idx.Manifests = append(idx.Manifests, l.desc)
	}
	cfg := ocispecs.Descriptor{MediaType: cacheimporttypes.CacheConfigMediaTypeV0, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	im.mem[cfg.Digest] = dt
	idx.Manifests = append(idx.Manifests, cfg)
	mdt, err := json.Marshal(idx)
	if err != nil {
		return nil, err
	}
	im.manifest = digest.FromBytes(mdt)
	im.mem[im.manifest] = mdt
	return im, nil
}

// readable reads the first byte of a layer's blob: the lookup finds the
// cache entry, this finds its bytes, which an eviction deletes.
//
// Why a layer must be readable before the daemon sees it: BuildKit's local
// importer, unlike its gha one, has no existence check it treats as a miss.
// Its provider asks to unlazy (cache/remotecache/local unlazyProvider), and
// worker.FromRemote's Info check answers from the descriptor
// (v1.DescriptorProviderPair has no InfoProvider). So loading a hit calls
// cache manager GetByBlob, which commits a record and then reads the whole
// layer from this store; when that read fails, GetByBlob deletes the
// record's lease but keeps the record and leaks its ref. Every later
// GetByBlob of the same blob chain on that buildkitd (a hit from any cache,
// or pulling the same base image) finds that record and fails with "lease
// … not found" until the daemon restarts. A layer left out of the served
// index instead makes the records that need it a plain miss
// (v1.parseRecord finds no provider for the chain).
//
// The remaining window is from this read to the daemon's: BuildKit reads
// the cache config at solve start and unlazies a hit when it loads it,
// usually seconds after Resolve. A blob evicted inside that window still
// fails the build (Stats().Gone says so), and poisons that builder.
func readable(ctx context.Context, r *ghacache.BlobRanges) (bool, error) {
	var b [1]byte
	_, err := r.ReadRange(ctx, b[:], 0)
	switch {
	case errors.Is(err, ghacache.ErrNotFound):
		return false, nil
	case err != nil && !errors.Is(err, io.EOF):
		return false, err
	}
	return true, nil
}

// layerDescriptor is BuildKit's gha importer's makeDescriptorProviderPair.
func layerDescriptor(l cacheimporttypes.CacheLayer) (ocispecs.Descriptor, error) {
	if l.Annotations == nil || l.Annotations.DiffID == "" {
		return ocispecs.Descriptor{}, fmt.Errorf("layer %s without annotations", l.Blob)
	}
	ann := map[string]string{labels.LabelUncompressed: l.Annotations.DiffID.String()}
	if !l.Annotations.CreatedAt.IsZero() {
		txt, err := l.Annotations.CreatedAt.MarshalText()
		if err != nil {
			return ocispecs.Descriptor{}, err
		}
		ann["buildkit/createdat"] = string(txt)
	}
	return ocispecs.Descriptor{MediaType: l.Annotations.MediaType, Digest: l.Blob, Size: l.Annotations.Size, Annotations: ann}, nil
}

// Manifest is the digest of the OCI index to import (the local importer's
// `digest` attribute) and its bytes.
func (im *Import) Manifest() (digest.Digest, []byte) { return im.manifest, im.mem[im.manifest] }

// Ref is the ref scope whose index this is.
func (im *Import) Ref() string { return im.ref }

// Stats reports what the import served so far.
func (im *Import) Stats() ImportStats {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.stats
}

// Info answers from the index: no network.
func (im *Import) Info(_ context.Context, d digest.Digest) (content.Info, error) {
	if b, ok := im.mem[d]; ok {
		return content.Info{Digest: d, Size: int64(len(b))}, nil
	}
	if l, ok := im.layers[d]; ok {
		return content.Info{Digest: d, Size: l.desc.Size}, nil
	}
	return content.Info{}, fmt.Errorf("blob %s: %w", d, cerrdefs.ErrNotFound)
}

// ReaderAt serves the manifest and config from memory and a layer with
// ranged reads from the cache, fetched only as the daemon reads.
func (im *Import) ReaderAt(ctx context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	if b, ok := im.mem[desc.Digest]; ok {
		return bytesReaderAt{bytes.NewReader(b)}, nil
	}
	l, ok := im.layers[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, cerrdefs.ErrNotFound)
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	if !l.read {
		l.read = true
		im.stats.BlobsServed++
	}
	if l.reader == nil {
		l.reader = im.newLayerReader(l)
	}
	return sharedReader{l.reader}, nil
}

// Close stops the read-ahead of every layer.
func (im *Import) Close() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	for _, l := range im.layers {
		if l.reader != nil {
			l.reader.Close()
		}
	}
	return nil
}

// sharedReader is one use of a layer's shared reader: closing it leaves
// the reader (and its read-ahead) to the next use; Import.Close ends it.
type sharedReader struct{ *rangeReader }

func (sharedReader) Close() error { return nil }

func (im *Import) newLayerReader(l *layer) *rangeReader {
	r := l.ranges
	if r == nil {
		r = im.c.Ranges(l.entry)
	}
	return newRangeReader(r, l.desc.Size, func(n int64, took time.Duration) {
		im.mu.Lock()
		im.stats.BytesDown += n
		im.stats.ReadTime += took
		before := l.fetched
		l.fetched += n
		l.took += took
		done := before < l.desc.Size && l.fetched >= l.desc.Size && l.desc.Size >= largeBlob
		spent := l.took
		im.mu.Unlock()
		if done {
			im.opt.Logf("gha: downloaded %s (%s) from %s, %s in ranged reads", shortDigest(l.desc.Digest), sizeText(l.desc.Size), refName(im.ref), spent.Round(time.Millisecond))
		}
	}, func() {
		im.mu.Lock()
		im.stats.Gone++
		im.mu.Unlock()
	})
}

// The daemon never writes to an import store.
func (im *Import) Writer(context.Context, ...content.WriterOpt) (content.Writer, error) {
	return nil, fmt.Errorf("import store is read-only: %w", cerrdefs.ErrNotImplemented)
}
func (im *Import) Update(context.Context, content.Info, ...string) (content.Info, error) {
	return content.Info{}, cerrdefs.ErrNotImplemented
}
func (im *Import) Walk(context.Context, content.WalkFunc, ...string) error { return nil }
func (im *Import) Delete(context.Context, digest.Digest) error             { return cerrdefs.ErrNotImplemented }
func (im *Import) Status(_ context.Context, ref string) (content.Status, error) {
	return content.Status{}, fmt.Errorf("ingest %s: %w", ref, cerrdefs.ErrNotFound)
}
func (im *Import) ListStatuses(context.Context, ...string) ([]content.Status, error) { return nil, nil }
func (im *Import) Abort(context.Context, string) error                               { return nil }

var _ content.Store = (*Import)(nil)

// refName is a ref for a log line: a hand-made runtime token may grant an
// empty one, which must not read as a missing word.
func refName(ref string) string {
	if ref == "" {
		return `the empty ref ""`
	}
	return ref
}
