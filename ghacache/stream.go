package ghacache

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Upload is a v2 entry being written as a stream: Write cuts the bytes
// into blocks and puts them to the signed URL in parallel while more
// arrive, so a blob is never spooled whole. Nothing is visible until
// Commit puts the block list and Finalize finalizes the entry; a caller
// that finds the bytes wrong (a digest mismatch) calls Abort instead.
type Upload struct {
	c            *Client
	key, version string
	sasURL       string

	mu     sync.Mutex
	buf    []byte // the block being filled
	ids    []string
	size   int64
	g      *errgroup.Group
	gctx   context.Context
	cancel context.CancelFunc
	done   bool
}

// Reserve creates the entry key/version (CreateCacheEntry) and returns
// the upload that fills it. The entry exists for others only after
// Finalize. An entry that exists gives an error matching ErrAlreadyExists.
func (c *Client) Reserve(ctx context.Context, key, version string) (*Upload, error) {
	if !c.cfg.ServiceV2 {
		return nil, errors.New("reserve: streaming uploads need the v2 cache service")
	}
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("reserve: %w", err)
	}
	if err := c.uploads.Wait(ctx); err != nil {
		return nil, fmt.Errorf("reserve %q: waiting for the upload budget: %w", key, err)
	}
	var created createCacheEntryResponse
	if err := c.twirp(ctx, "CreateCacheEntry", createCacheEntryRequest{Key: key, Version: version}, &created); err != nil {
		return nil, fmt.Errorf("reserve %q: %w", key, err)
	}
	if !created.OK || created.SignedUploadURL == "" {
		if created.Message != "" {
			return nil, fmt.Errorf("reserve %q: CreateCacheEntry refused: %s", key, c.r.redact(errors.New(created.Message)))
		}
		return nil, fmt.Errorf("reserve %q: CreateCacheEntry refused: %w", key, ErrAlreadyExists)
	}
	// The uploads outlive the request that wrote their bytes: they end
	// at Commit or Abort, not when one daemon request does.
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g, gctx := errgroup.WithContext(gctx)
	return &Upload{c: c, key: key, version: version, sasURL: created.SignedUploadURL, g: g, gctx: gctx, cancel: cancel}, nil
}

// Write queues p; a full block is put in the background, at most
// UploadConcurrency at once across all of the client's uploads (Write
// waits for a free slot), which bounds memory to about that many blocks
// plus the ones being filled.
func (u *Upload) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return 0, errors.New("upload: write after commit or abort")
	}
	n := len(p)
	bs := int(u.c.cfg.BlockSize)
	for len(p) > 0 {
		k := min(len(p), bs-len(u.buf))
		if n := len(u.buf) + k; n > cap(u.buf) && n > smallBlob {
			// Past a small blob's size, take a whole pooled block rather
			// than let append grow the buffer step by step: each step
			// would be garbage.
			b := u.c.getBlock()[:len(u.buf)]
			copy(b, u.buf)
			u.buf = b
		}
		u.buf = append(u.buf, p[:k]...)
		p = p[k:]
		u.size += int64(k)
		if len(u.buf) == bs {
			if err := u.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// flush puts the filled block; callers hold mu.
func (u *Upload) flush() error {
	if err := u.gctx.Err(); err != nil {
		return fmt.Errorf("upload %q: %w", u.key, context.Cause(u.gctx))
	}
	i := len(u.ids)
	// Azure wants block IDs of equal length within a blob.
	id := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "block-%08d", i))
	u.ids = append(u.ids, id)
	block := u.buf
	u.buf = nil
	select {
	case u.c.blockSlots <- struct{}{}:
	case <-u.gctx.Done():
		return fmt.Errorf("upload %q: %w", u.key, context.Cause(u.gctx))
	}
	u.g.Go(func() error {
		defer func() { <-u.c.blockSlots }()
		defer u.c.putBlock(block)
		url := withQuery(u.sasURL, "comp=block&blockid="+queryEscape(id))
		return u.c.putBytes(u.gctx, fmt.Sprintf("put block %d", i+1), url, bytes.NewReader(block), int64(len(block)), nil)
	})
	return nil
}

// Commit waits for the blocks and puts the block list (a blob smaller
// than one block is put whole). It returns the blob's size.
func (u *Upload) Commit(ctx context.Context) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return 0, errors.New("upload: committed twice")
	}
	u.done = true
	defer u.cancel()
	if len(u.ids) == 0 {
		if err := u.c.putBlob(ctx, u.sasURL, bytes.NewReader(u.buf), int64(len(u.buf))); err != nil {
			return 0, fmt.Errorf("upload %q: %w", u.key, err)
		}
		return u.size, nil
	}
	if len(u.buf) > 0 {
		if err := u.flush(); err != nil {
			return 0, err
		}
	}
	if err := u.g.Wait(); err != nil {
		return 0, fmt.Errorf("upload %q: %w", u.key, err)
	}
	if err := u.c.putBlockList(ctx, u.sasURL, u.ids); err != nil {
		return 0, fmt.Errorf("upload %q: %w", u.key, err)
	}
	return u.size, nil
}

// Abort stops the block uploads; the entry stays unfinalized, which the
// service treats as never written.
func (u *Upload) Abort() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return
	}
	u.done = true
	u.cancel()
	_ = u.g.Wait()
	u.buf = nil
}

// Finalize makes the committed entry visible (FinalizeCacheEntryUpload).
func (u *Upload) Finalize(ctx context.Context, size int64) error {
	var fin finalizeCacheEntryUploadResponse
	if err := u.c.twirp(ctx, "FinalizeCacheEntryUpload", finalizeCacheEntryUploadRequest{Key: u.key, SizeBytes: size, Version: u.version}, &fin); err != nil {
		return fmt.Errorf("finalize %q: %w", u.key, err)
	}
	if !fin.OK {
		msg := fin.Message
		if msg == "" {
			msg = "not ok"
		}
		return fmt.Errorf("finalize %q: FinalizeCacheEntryUpload: %s", u.key, u.c.r.redact(errors.New(msg)))
	}
	return nil
}

// smallBlob is the size up to which an upload's buffer grows as needed
// (an index, a small layer) instead of taking a whole block.
const smallBlob = 256 << 10

// blocks are reused block buffers: the endpoint streams blob after blob,
// and a new 8 MiB buffer for each block would leave the heap to the GC.
var blocks sync.Pool

func (c *Client) getBlock() []byte {
	if b, ok := blocks.Get().(*[]byte); ok && int64(cap(*b)) == c.cfg.BlockSize {
		return *b
	}
	return make([]byte, 0, c.cfg.BlockSize)
}

func (c *Client) putBlock(b []byte) {
	if int64(cap(b)) == c.cfg.BlockSize {
		b = b[:0]
		blocks.Put(&b)
	}
}

// LoadAt opens the entry's blob from byte off (Load resumes and refreshes
// the same way). The size is the whole blob's, or -1 if unknown.
func (c *Client) LoadAt(ctx context.Context, e Entry, off int64) (io.ReadCloser, int64, error) {
	br := &blobReader{ctx: ctx, c: c, e: e, size: -1, off: off}
	if err := br.open(); err != nil {
		return nil, 0, err
	}
	return br, br.size, nil
}
