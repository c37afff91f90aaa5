package contentstore

import (
	"sync"
	"time"
)

// ExportStats is what an export moved.
type ExportStats struct {
	Scope, Ref string // the gha scope name and the writable ref the index was saved for
	IndexKey   string // the index entry written; "" when none was
	Uploaded   int    // blobs uploaded
	Skipped    int    // blobs the cache already held
	BytesUp    int64
	UploadTime time.Duration // wall time from the first upload's start to the last one's end
	Failed     []string      // layers not in the cache, so no index was written (digests)
	Size       int64         // bytes the written index names: its layers and itself
}

// ImportStats is what one import scope served.
type ImportStats struct {
	Scope, Ref  string
	IndexKey    string
	Layers      int // layers the index names
	Evicted     int // of those, gone from the cache when the index was resolved (left out)
	Gone        int // layers found gone while the daemon read them
	BlobsServed int // layers the daemon read
	BytesDown   int64
	ReadTime    time.Duration // summed time spent in ranged reads
}

type counter struct {
	mu    sync.Mutex
	first time.Time
	last  time.Time
}

func (c *counter) span(start, end time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.first.IsZero() || start.Before(c.first) {
		c.first = start
	}
	if end.After(c.last) {
		c.last = end
	}
}

func (c *counter) elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last.Sub(c.first)
}
