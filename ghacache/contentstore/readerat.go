package contentstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/bkcache/bkcache/ghacache"
)

// Read-ahead shape: the daemon reads a layer sequentially in 1 MiB
// ReadAt calls (containerd's content server); fetching chunkSize ranges
// readAhead chunks ahead, in parallel, hides the per-request latency while
// holding at most (readAhead+1)·chunkSize bytes per open layer, and at most
// readAheadBudget chunks ahead over all open layers of the process.
const (
	chunkSize       = 2 << 20
	readAhead       = 4
	readAheadBudget = 8 // 16 MiB: two layers at full read-ahead
)

// aheadSlots caps the chunks fetched ahead of their reader across every
// layer: the daemon may open many layers and read none to the end, and
// each would otherwise hold readAhead chunks until the import closes. A
// chunk a reader waits for takes no slot (it is bounded by the daemon's
// concurrent reads), so a reader never waits for another's read-ahead.
var aheadSlots = make(chan struct{}, readAheadBudget)

type chunk struct {
	done chan struct{}
	data []byte
	err  error
	slot bool // holds one of aheadSlots until dropped
}

// rangeReader is a content.ReaderAt over ranged GETs with read-ahead.
type rangeReader struct {
	r      *ghacache.BlobRanges
	size   int64
	report func(n int64, took time.Duration)
	gone   func() // the blob was evicted after the index was resolved
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	chunks map[int64]*chunk
}

func newRangeReader(r *ghacache.BlobRanges, size int64, report func(int64, time.Duration), gone func()) *rangeReader {
	// The daemon's request context ends with each Read call; the fetches
	// ahead must outlive it, so they run until Close.
	ctx, cancel := context.WithCancel(context.Background())
	return &rangeReader{r: r, size: size, report: report, gone: gone, ctx: ctx, cancel: cancel, chunks: map[int64]*chunk{}}
}

func (rr *rangeReader) Size() int64 { return rr.size }

func (rr *rangeReader) Close() error {
	rr.cancel()
	rr.mu.Lock()
	defer rr.mu.Unlock()
	for i, c := range rr.chunks {
		release(c)
		delete(rr.chunks, i)
	}
	return nil
}

func release(c *chunk) {
	if c.slot {
		c.slot = false
		<-aheadSlots
	}
}

// fetch starts (once) the download of chunk i and returns it. A chunk
// fetched ahead needs a free slot; without one it is not fetched (nil).
func (rr *rangeReader) fetch(i int64, ahead bool) *chunk {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if c, ok := rr.chunks[i]; ok {
		return c
	}
	c := &chunk{done: make(chan struct{})}
	if ahead {
		select {
		case aheadSlots <- struct{}{}:
			c.slot = true
		default:
			return nil
		}
	}
	rr.chunks[i] = c
	off := i * chunkSize
	n := min(chunkSize, rr.size-off)
	go func() {
		defer close(c.done)
		start := time.Now()
		buf := make([]byte, n)
		got, err := rr.r.ReadRange(rr.ctx, buf, off)
		if errors.Is(err, io.EOF) && int64(got) == n {
			err = nil
		}
		c.data, c.err = buf[:got], err
		rr.report(int64(got), time.Since(start))
	}()
	return c
}

func (rr *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= rr.size {
		return 0, io.EOF
	}
	total := 0
	for len(p) > 0 && off < rr.size {
		i := off / chunkSize
		for j := i + 1; j <= i+readAhead && j*chunkSize < rr.size; j++ {
			if rr.fetch(j, true) == nil {
				break
			}
		}
		c := rr.fetch(i, false)
		<-c.done
		if c.err != nil {
			rr.drop(i)
			if errors.Is(c.err, ghacache.ErrNotFound) {
				// Evicted since the index was resolved. BuildKit's local
				// importer does not check that a layer exists before it
				// uses a cached result, so this fails the solve; the
				// caller sees Gone and builds again without the import.
				rr.gone()
				return total, fmt.Errorf("%w: %w", cerrdefs.ErrNotFound, c.err)
			}
			return total, c.err
		}
		within := off - i*chunkSize
		if within >= int64(len(c.data)) {
			return total, io.ErrUnexpectedEOF
		}
		n := copy(p, c.data[within:])
		total += n
		p = p[n:]
		off += int64(n)
		if within+int64(n) == int64(len(c.data)) {
			// Read to the chunk's end: sequential readers never come back.
			rr.drop(i)
		}
	}
	if len(p) > 0 {
		return total, io.EOF
	}
	return total, nil
}

func (rr *rangeReader) drop(i int64) {
	rr.mu.Lock()
	if c, ok := rr.chunks[i]; ok {
		release(c)
		delete(rr.chunks, i)
	}
	rr.mu.Unlock()
}
