package ghacache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The v2 cache service is Twirp with JSON bodies. Field names are the
// proto names from actions/toolkit
// packages/cache/src/generated/results/api/v1/cache.ts; int64 fields are
// sent as strings, as protobuf's JSON mapping (and the toolkit) does.
const twirpService = "twirp/github.actions.results.api.v1.CacheService/"

type createCacheEntryRequest struct {
	Key     string `json:"key"`
	Version string `json:"version"`
}

type createCacheEntryResponse struct {
	OK              bool   `json:"ok"`
	SignedUploadURL string `json:"signed_upload_url"`
	Message         string `json:"message"`
}

type finalizeCacheEntryUploadRequest struct {
	Key       string `json:"key"`
	SizeBytes int64  `json:"size_bytes,string"`
	Version   string `json:"version"`
}

type finalizeCacheEntryUploadResponse struct {
	OK      bool      `json:"ok"`
	EntryID jsonInt64 `json:"entry_id"`
	Message string    `json:"message"`
}

type getCacheEntryDownloadURLRequest struct {
	Key         string   `json:"key"`
	RestoreKeys []string `json:"restore_keys"`
	Version     string   `json:"version"`
}

type getCacheEntryDownloadURLResponse struct {
	OK                bool   `json:"ok"`
	SignedDownloadURL string `json:"signed_download_url"`
	MatchedKey        string `json:"matched_key"`
}

// jsonInt64 accepts an int64 as a JSON number or string.
type jsonInt64 int64

func (n *jsonInt64) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s == "" {
			*n = 0
			return nil
		}
		v, err := strconv.ParseInt(s, 10, 64)
		*n = jsonInt64(v)
		return err
	}
	var v int64
	err := json.Unmarshal(b, &v)
	*n = jsonInt64(v)
	return err
}

func (c *Client) twirp(ctx context.Context, method string, in, out any) error {
	return c.postJSON(ctx, method, "POST", c.base.String()+twirpService+method, in, out)
}

func (c *Client) lookupV2(ctx context.Context, key string, restoreKeys []string, version string) (Entry, bool, error) {
	var resp getCacheEntryDownloadURLResponse
	err := c.twirp(ctx, "GetCacheEntryDownloadURL", getCacheEntryDownloadURLRequest{
		Key: key, RestoreKeys: nonNil(restoreKeys), Version: version,
	}, &resp)
	// A Twirp not_found is a miss; a 404 bad_route means a wrong URL and
	// stays an error.
	var se *StatusError
	if errors.As(err, &se) && se.Code == "not_found" {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, err
	}
	if !resp.OK || resp.SignedDownloadURL == "" {
		return Entry{}, false, nil
	}
	e := Entry{Key: resp.MatchedKey, Version: version, DownloadURL: SignedURL(resp.SignedDownloadURL)}
	if e.Key == "" {
		e.Key = key
	}
	return e, true, nil
}

func (c *Client) saveV2(ctx context.Context, key, version string, r io.ReaderAt, size int64) error {
	var created createCacheEntryResponse
	if err := c.twirp(ctx, "CreateCacheEntry", createCacheEntryRequest{Key: key, Version: version}, &created); err != nil {
		return fmt.Errorf("save %q: %w", key, err)
	}
	if !created.OK || created.SignedUploadURL == "" {
		if created.Message != "" {
			return fmt.Errorf("save %q: CreateCacheEntry refused: %s", key, c.r.redact(errors.New(created.Message)))
		}
		// The toolkit's reading of ok=false without a message: another job
		// holds the key.
		return fmt.Errorf("save %q: CreateCacheEntry refused: %w", key, ErrAlreadyExists)
	}
	if err := c.uploadBlob(ctx, created.SignedUploadURL, r, size); err != nil {
		return fmt.Errorf("save %q: %w", key, err)
	}
	var fin finalizeCacheEntryUploadResponse
	if err := c.twirp(ctx, "FinalizeCacheEntryUpload", finalizeCacheEntryUploadRequest{Key: key, SizeBytes: size, Version: version}, &fin); err != nil {
		return fmt.Errorf("save %q: %w", key, err)
	}
	if !fin.OK {
		msg := fin.Message
		if msg == "" {
			msg = "not ok"
		}
		return fmt.Errorf("save %q: FinalizeCacheEntryUpload: %s", key, c.r.redact(errors.New(msg)))
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
