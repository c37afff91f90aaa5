package ghacache

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// Blob I/O against Azure SAS URLs with plain HTTP (Put Blob, Put Block,
// Put Block List, Get Blob). Plain HTTP rather than the Azure SDK: the SDK
// is not a direct dependency, and these four calls are all v2 needs; it
// also keeps retries and redaction in one place.

// azureVersion is the storage REST version sent as x-ms-version.
const azureVersion = "2023-11-03"

func (c *Client) uploadBlob(ctx context.Context, sasURL string, r io.ReaderAt, size int64) error {
	if size <= c.cfg.BlockSize {
		return c.putBlob(ctx, sasURL, r, size)
	}
	n := int((size + c.cfg.BlockSize - 1) / c.cfg.BlockSize)
	ids := make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.UploadConcurrency)
	for i := range n {
		// Azure wants block IDs of equal length within a blob.
		ids[i] = base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("block-%08d", i)))
		off := int64(i) * c.cfg.BlockSize
		ln := min(c.cfg.BlockSize, size-off)
		g.Go(func() error {
			u := withQuery(sasURL, "comp=block&blockid="+queryEscape(ids[i]))
			return c.putBytes(gctx, fmt.Sprintf("put block %d/%d", i+1, n), u, io.NewSectionReader(r, off, ln), ln, nil)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return c.putBlockList(ctx, sasURL, ids)
}

func (c *Client) putBlob(ctx context.Context, sasURL string, r io.ReaderAt, size int64) error {
	return c.putBytes(ctx, "put blob", sasURL, io.NewSectionReader(r, 0, size), size, map[string]string{
		"x-ms-blob-type":         "BlockBlob",
		"x-ms-blob-content-type": "application/octet-stream",
	})
}

type blockList struct {
	XMLName xml.Name `xml:"BlockList"`
	Latest  []string `xml:"Latest"`
}

func (c *Client) putBlockList(ctx context.Context, sasURL string, ids []string) error {
	body, err := xml.Marshal(blockList{Latest: ids})
	if err != nil {
		return err
	}
	body = append([]byte(xml.Header), body...)
	return c.putBytes(ctx, "put block list", withQuery(sasURL, "comp=blocklist"), bytes.NewReader(body), int64(len(body)), map[string]string{
		"Content-Type":           "application/xml",
		"x-ms-blob-content-type": "application/octet-stream",
	})
}

// putBytes PUTs body (re-read from the start on every attempt).
func (c *Client) putBytes(ctx context.Context, op, u string, body io.ReadSeeker, n int64, hdr map[string]string) error {
	resp, err := c.r.do(ctx, op, func(ctx context.Context) (*http.Request, error) {
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, io.NopCloser(body))
		if err != nil {
			return nil, err
		}
		req.ContentLength = n
		if n == 0 {
			req.Body = http.NoBody
		}
		req.Header.Set("x-ms-version", azureVersion)
		req.Header.Set("User-Agent", userAgent)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return req, nil
	})
	if err != nil {
		return err
	}
	return c.expectOK(op, resp)
}

// expectOK closes resp, turning a non-2xx status into a StatusError. A 2xx
// body is drained (bounded) so the connection can be reused.
func (c *Client) expectOK(op string, resp *http.Response) error {
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return c.r.statusError(op, resp.Request, resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return nil
}

func withQuery(u, q string) string {
	if strings.Contains(u, "?") {
		return u + "&" + q
	}
	return u + "?" + q
}

// queryEscape escapes a base64 block ID for a query ('+', '/', '=').
func queryEscape(s string) string {
	r := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D")
	return r.Replace(s)
}

// blobReader streams a blob and resumes with a ranged GET after a broken
// connection, at most MaxRetries times.
type blobReader struct {
	ctx       context.Context
	c         *Client
	e         Entry
	body      io.ReadCloser
	off       int64
	size      int64 // -1 until known
	resumes   int
	refreshed bool
}

func (b *blobReader) open() error {
	const op = "download blob"
	for {
		u := string(b.e.DownloadURL)
		resp, err := b.c.r.do(b.ctx, op, func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("x-ms-version", azureVersion)
			req.Header.Set("User-Agent", userAgent)
			if b.off > 0 {
				req.Header.Set("Range", "bytes="+strconv.FormatInt(b.off, 10)+"-")
			}
			return req, nil
		})
		if err != nil {
			return err
		}
		switch {
		case resp.StatusCode == http.StatusOK && b.off == 0, resp.StatusCode == http.StatusPartialContent && b.off > 0:
			if b.size < 0 {
				b.size = blobSize(resp)
			}
			b.body = resp.Body
			return nil
		case (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized) && !b.refreshed && b.e.Key != "":
			// The signed URL may have expired: ask for a fresh one, once.
			serr := b.c.r.statusError(op, resp.Request, resp)
			b.refreshed = true
			fresh, ok, err := b.c.Lookup(b.ctx, b.e.Key, nil, b.e.Version)
			if err != nil {
				return fmt.Errorf("%w; refreshing the URL: %w", serr, err)
			}
			if !ok {
				return fmt.Errorf("%w; entry %q is gone: %w", serr, b.e.Key, ErrNotFound)
			}
			b.e.DownloadURL = fresh.DownloadURL
			continue
		case resp.StatusCode/100 == 2:
			resp.Body.Close()
			return fmt.Errorf("%s: server ignored range at offset %d (status %d)", op, b.off, resp.StatusCode)
		default:
			return b.c.r.statusError(op, resp.Request, resp)
		}
	}
}

// blobSize reads the total size from Content-Range or Content-Length.
func blobSize(resp *http.Response) int64 {
	if cr := resp.Header.Get("Content-Range"); cr != "" {
		if _, total, ok := strings.Cut(cr, "/"); ok {
			if n, err := strconv.ParseInt(total, 10, 64); err == nil {
				return n
			}
		}
	}
	return resp.ContentLength
}

func (b *blobReader) Read(p []byte) (int, error) {
	for {
		if b.body == nil {
			if err := b.open(); err != nil {
				return 0, err
			}
		}
		n, err := b.body.Read(p)
		b.off += int64(n)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, io.EOF) && (b.size < 0 || b.off == b.size):
			return n, io.EOF
		}
		// Broken or short body: resume from b.off.
		b.body.Close()
		b.body = nil
		if b.ctx.Err() != nil || b.resumes >= b.c.cfg.MaxRetries {
			return n, b.c.r.redact(fmt.Errorf("download blob at offset %d: %w", b.off, errors.Join(err, io.ErrUnexpectedEOF)))
		}
		b.resumes++
		if n > 0 {
			return n, nil
		}
	}
}

// Size is the blob's size as the storage said it, -1 if it did not.
func (b *blobReader) Size() int64 { return b.size }

func (b *blobReader) Close() error {
	if b.body != nil {
		return b.body.Close()
	}
	return nil
}
