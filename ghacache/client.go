// Package ghacache talks to the GitHub Actions cache: the cache service
// (v2 Twirp API on github.com, legacy v1 REST on GHES), the Azure blob
// store behind v2's signed URLs, and the REST management API (list,
// delete, usage) through go-github.
//
// It is hand-rolled rather than built on github.com/tonistiigi/go-actions-cache
// (BuildKit's client, which stays what BuildKit itself uses for type=gha)
// because that library retries only 429 (not 5xx or network errors), keeps
// a process-wide backoff pool, uploads v2 blobs through the Azure SDK's
// UploadStream without a concurrency or block-size knob, and prints signed
// URLs in its errors ("invalid status response … for <URL>"). This package
// keeps the wire format BuildKit uses (see BuildKitVersion, IndexKey) so the
// entries it reads and writes are the same ones.
package ghacache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/bkcache/bkcache/internal/redact"
)

const userAgent = "bkcache"

// SignedURL is a pre-authenticated URL (Azure SAS). It prints redacted, so
// an Entry can be logged with %v; convert with string() to use it.
type SignedURL string

func (u SignedURL) String() string   { return redact.URL(string(u)) }
func (u SignedURL) GoString() string { return strconv.Quote(u.String()) }

// Entry is a cache entry found by Lookup.
type Entry struct {
	Key         string    // the key that matched: the exact key or one starting with a restore key
	Version     string    // the version it was looked up with
	Scope       string    // v1 only: the ref scope the entry belongs to
	DownloadURL SignedURL // where Load reads the blob
}

// Client speaks the cache service protocol Config selects.
type Client struct {
	cfg     Config
	base    *url.URL
	r       *retrier
	uploads *rate.Limiter
	// blockSlots bounds the blocks of streaming uploads (Upload) in
	// flight at once, across uploads.
	blockSlots chan struct{}
}

// NewClient checks cfg and returns a client for it.
func NewClient(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if cfg.Token == "" {
		return nil, errors.New("cache service: no runtime token (ACTIONS_RUNTIME_TOKEN)")
	}
	raw, name := cfg.CacheURL, "ACTIONS_CACHE_URL"
	if cfg.ServiceV2 {
		raw, name = cfg.ResultsURL, "ACTIONS_RESULTS_URL"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("cache service: %s %q is not an http(s) URL", name, redact.URL(raw))
	}
	u.RawQuery, u.Fragment = "", ""
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	// Half the budget as burst, half as rate: no sliding minute ever sees
	// more than UploadsPerMinute creations.
	half := max(cfg.UploadsPerMinute/2, 1)
	uploads := rate.NewLimiter(rate.Every(time.Minute/time.Duration(half)), half)
	return &Client{cfg: cfg, base: u, r: newRetrier(cfg), uploads: uploads, blockSlots: make(chan struct{}, cfg.UploadConcurrency)}, nil
}

// V2 reports whether the client speaks the v2 Twirp API.
func (c *Client) V2() bool { return c.cfg.ServiceV2 }

// checkKey applies the toolkit's rules (cache.ts checkKey): at most 512
// characters, no commas (v1 joins keys with commas).
func checkKey(k string) error {
	switch {
	case k == "":
		return errors.New("cache key is empty")
	case len(k) > 512:
		return fmt.Errorf("cache key %.40q… is longer than 512 characters", k)
	case strings.Contains(k, ","):
		return fmt.Errorf("cache key %q contains a comma", k)
	}
	return nil
}

// Lookup finds the entry saved under key, or else the newest whose key
// starts with one of restoreKeys (tried in order), among the scopes the
// runtime token may read. version must match the one used to save.
func (c *Client) Lookup(ctx context.Context, key string, restoreKeys []string, version string) (Entry, bool, error) {
	for _, k := range append([]string{key}, restoreKeys...) {
		if err := checkKey(k); err != nil {
			return Entry{}, false, fmt.Errorf("lookup: %w", err)
		}
	}
	if version == "" {
		return Entry{}, false, errors.New("lookup: version is empty")
	}
	if c.cfg.ServiceV2 {
		return c.lookupV2(ctx, key, restoreKeys, version)
	}
	return c.lookupV1(ctx, key, restoreKeys, version)
}

// Save stores size bytes of r under key and version. It returns an error
// matching ErrAlreadyExists when the entry exists (entries are immutable).
func (c *Client) Save(ctx context.Context, key, version string, r io.ReaderAt, size int64) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if version == "" {
		return errors.New("save: version is empty")
	}
	if size < 0 {
		return fmt.Errorf("save %q: negative size", key)
	}
	if err := c.uploads.Wait(ctx); err != nil {
		return fmt.Errorf("save %q: waiting for the upload budget: %w", key, err)
	}
	if c.cfg.ServiceV2 {
		return c.saveV2(ctx, key, version, r, size)
	}
	return c.saveV1(ctx, key, version, r, size)
}

// Load opens the entry's blob. A broken download resumes with a ranged
// GET; an expired signed URL (403) is refreshed once by looking the exact
// key up again. A blob that is gone (evicted) gives an error matching
// ErrNotFound.
//
// The reader's Size method gives the blob's size, -1 when the storage
// did not say.
func (c *Client) Load(ctx context.Context, e Entry) (io.ReadCloser, error) {
	br := &blobReader{ctx: ctx, c: c, e: e, size: -1}
	if err := br.open(); err != nil {
		return nil, err
	}
	return br, nil
}

// postJSON sends one JSON request to the cache service and decodes a 2xx
// answer into out; other answers become a *StatusError.
func (c *Client) postJSON(ctx context.Context, op, method, u string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	resp, err := c.r.do(ctx, op, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		c.serviceHeaders(req)
		req.Header.Set("Content-Type", "application/json")
		return req, nil
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return c.r.statusError(op, resp.Request, resp)
	}
	return c.decode(op, resp, out)
}

func (c *Client) decode(op string, resp *http.Response, out any) error {
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return c.r.redact(fmt.Errorf("%s: decoding response: %w", op, err))
	}
	return nil
}

func (c *Client) serviceHeaders(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	req.Header.Set("User-Agent", userAgent)
	if !c.cfg.ServiceV2 {
		req.Header.Set("Accept", "application/json;api-version=6.0-preview.1")
	}
}
