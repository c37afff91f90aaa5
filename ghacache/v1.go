package ghacache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// The legacy v1 service (still GHES's): REST under _apis/artifactcache/,
// as in actions/toolkit packages/cache/src/internal/cacheHttpClient.ts.

type v1CacheEntry struct {
	CacheKey        string `json:"cacheKey"`
	Scope           string `json:"scope"`
	ArchiveLocation string `json:"archiveLocation"`
}

type v1ReserveRequest struct {
	Key       string `json:"key"`
	Version   string `json:"version"`
	CacheSize int64  `json:"cacheSize"`
}

type v1ReserveResponse struct {
	CacheID int64 `json:"cacheId"`
}

type v1CommitRequest struct {
	Size int64 `json:"size"`
}

func (c *Client) v1URL(resource string) string {
	return c.base.String() + "_apis/artifactcache/" + resource
}

func (c *Client) lookupV1(ctx context.Context, key string, restoreKeys []string, version string) (Entry, bool, error) {
	q := url.Values{}
	q.Set("keys", strings.Join(append([]string{key}, restoreKeys...), ","))
	q.Set("version", version)
	u := c.v1URL("cache?" + q.Encode())
	resp, err := c.r.do(ctx, "getCacheEntry", func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err == nil {
			c.serviceHeaders(req)
		}
		return req, err
	})
	if err != nil {
		return Entry{}, false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNoContent: // the toolkit's only "miss"
		return Entry{}, false, nil
	case resp.StatusCode/100 != 2:
		return Entry{}, false, c.r.statusError("getCacheEntry", resp.Request, resp)
	}
	var ce v1CacheEntry
	if err := c.decode("getCacheEntry", resp, &ce); err != nil {
		return Entry{}, false, err
	}
	if ce.ArchiveLocation == "" {
		return Entry{}, false, nil
	}
	if ce.CacheKey == "" {
		ce.CacheKey = key
	}
	return Entry{Key: ce.CacheKey, Version: version, Scope: ce.Scope, DownloadURL: SignedURL(ce.ArchiveLocation)}, true, nil
}

func (c *Client) saveV1(ctx context.Context, key, version string, r io.ReaderAt, size int64) error {
	var res v1ReserveResponse
	if err := c.postJSON(ctx, "reserveCache", http.MethodPost, c.v1URL("caches"), v1ReserveRequest{Key: key, Version: version, CacheSize: size}, &res); err != nil {
		return fmt.Errorf("save %q: %w", key, err)
	}
	if res.CacheID <= 0 {
		return fmt.Errorf("save %q: reserveCache returned no cache id: %w", key, ErrAlreadyExists)
	}
	id := strconv.FormatInt(res.CacheID, 10)
	if err := c.uploadChunksV1(ctx, c.v1URL("caches/"+id), r, size); err != nil {
		return fmt.Errorf("save %q: %w", key, err)
	}
	if err := c.postJSON(ctx, "commitCache", http.MethodPost, c.v1URL("caches/"+id), v1CommitRequest{Size: size}, nil); err != nil {
		return fmt.Errorf("save %q: %w", key, err)
	}
	return nil
}

// uploadChunksV1 PATCHes BlockSize chunks with Content-Range, up to
// UploadConcurrency at a time.
func (c *Client) uploadChunksV1(ctx context.Context, u string, r io.ReaderAt, size int64) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.UploadConcurrency)
	for off := int64(0); off < size; off += c.cfg.BlockSize {
		n := min(c.cfg.BlockSize, size-off)
		g.Go(func() error {
			op := fmt.Sprintf("uploadChunk %d-%d", off, off+n-1)
			resp, err := c.r.do(ctx, op, func(ctx context.Context) (*http.Request, error) {
				req, err := http.NewRequestWithContext(ctx, http.MethodPatch, u, io.NewSectionReader(r, off, n))
				if err != nil {
					return nil, err
				}
				req.ContentLength = n
				c.serviceHeaders(req)
				req.Header.Set("Content-Type", "application/octet-stream")
				req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", off, off+n-1))
				return req, nil
			})
			if err != nil {
				return err
			}
			return c.expectOK(op, resp)
		})
	}
	return g.Wait()
}
