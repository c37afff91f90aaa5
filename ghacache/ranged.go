package ghacache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// BlobRanges reads byte ranges of one entry's blob, each with its own
// ranged GET, so that callers can fetch parts of a large blob in parallel
// and never download what they do not read. An expired signed URL is
// refreshed (once per RangeReader) by looking the exact key up again.
type BlobRanges struct {
	c *Client

	mu        sync.Mutex
	e         Entry
	refreshed bool
}

// Ranges returns a reader of e's blob ranges.
func (c *Client) Ranges(e Entry) *BlobRanges { return &BlobRanges{c: c, e: e} }

// ReadRange fills p with the bytes at off. It returns io.EOF (with the
// bytes read) when the blob ends before p is full, and an error matching
// ErrNotFound when the blob is gone.
func (b *BlobRanges) ReadRange(ctx context.Context, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	const op = "download blob range"
	for {
		b.mu.Lock()
		u := string(b.e.DownloadURL)
		b.mu.Unlock()
		resp, err := b.c.r.do(ctx, op, func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("x-ms-version", azureVersion)
			req.Header.Set("User-Agent", userAgent)
			req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+int64(len(p))-1, 10))
			return req, nil
		})
		if err != nil {
			return 0, err
		}
		switch {
		case resp.StatusCode == http.StatusPartialContent:
			n, err := io.ReadFull(resp.Body, p)
			resp.Body.Close()
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				// A short answer is the blob's end only if the server says so.
				if total := blobSize(resp); total >= 0 && off+int64(n) >= total {
					return n, io.EOF
				}
				return n, b.c.r.redact(fmt.Errorf("%s at %d: %w", op, off, io.ErrUnexpectedEOF))
			}
			return n, err
		case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			resp.Body.Close()
			return 0, io.EOF
		case resp.StatusCode == http.StatusNotFound:
			serr := b.c.r.statusError(op, resp.Request, resp)
			return 0, fmt.Errorf("%w: %w", serr, ErrNotFound)
		case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
			serr := b.c.r.statusError(op, resp.Request, resp)
			if err := b.refresh(ctx, u); err != nil {
				return 0, fmt.Errorf("%w; refreshing the URL: %w", serr, err)
			}
		case resp.StatusCode/100 == 2:
			resp.Body.Close()
			return 0, fmt.Errorf("%s: server ignored range at offset %d (status %d)", op, off, resp.StatusCode)
		default:
			return 0, b.c.r.statusError(op, resp.Request, resp)
		}
	}
}

// refresh replaces the signed URL that failed (stale), once.
func (b *BlobRanges) refresh(ctx context.Context, stale string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if string(b.e.DownloadURL) != stale {
		return nil // another reader refreshed it already
	}
	if b.refreshed {
		return errors.New("already refreshed once")
	}
	b.refreshed = true
	fresh, ok, err := b.c.Lookup(ctx, b.e.Key, nil, b.e.Version)
	if err != nil {
		return err
	}
	if !ok || fresh.Key != b.e.Key {
		return fmt.Errorf("entry %q is gone: %w", b.e.Key, ErrNotFound)
	}
	b.e.DownloadURL = fresh.DownloadURL
	return nil
}
