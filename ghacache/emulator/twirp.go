package emulator

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const cacheService = "github.actions.results.api.v1.CacheService"

// twirpRequest accepts both JSON spellings protojson accepts: proto field
// names (what @actions/cache and go-actions-cache send: restore_keys,
// size_bytes) and lowerCamel (restoreKeys, sizeBytes). int64 fields come as
// a string from protobuf-ts and as a number from go-actions-cache.
type twirpRequest struct {
	Metadata         json.RawMessage `json:"metadata"`
	Key              string          `json:"key"`
	Version          string          `json:"version"`
	RestoreKeys      []string        `json:"restore_keys"`
	RestoreKeysCamel []string        `json:"restoreKeys"`
	SizeBytes        flexInt         `json:"size_bytes"`
	SizeBytesCamel   flexInt         `json:"sizeBytes"`
}

type flexInt struct {
	N   int64
	Set bool
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if string(b) == "null" {
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("int64 field: %w", err)
	}
	f.N, f.Set = n, true
	return nil
}

// Responses are written the way a Go Twirp server does by default
// (protojson with proto names and unpopulated fields emitted, int64 as a
// string): go-actions-cache decodes entry_id into a string.
type createResponse struct {
	OK              bool   `json:"ok"`
	SignedUploadURL string `json:"signed_upload_url"`
	Message         string `json:"message"`
}

type finalizeResponse struct {
	OK      bool   `json:"ok"`
	EntryID string `json:"entry_id"`
	Message string `json:"message"`
}

type downloadResponse struct {
	OK                bool   `json:"ok"`
	SignedDownloadURL string `json:"signed_download_url"`
	MatchedKey        string `json:"matched_key"`
}

// twirpStatus maps Twirp error codes to HTTP statuses (Twirp spec).
var twirpStatus = map[string]int{
	"invalid_argument":    http.StatusBadRequest,
	"malformed":           http.StatusBadRequest,
	"unauthenticated":     http.StatusUnauthorized,
	"permission_denied":   http.StatusForbidden,
	"not_found":           http.StatusNotFound,
	"bad_route":           http.StatusNotFound,
	"already_exists":      http.StatusConflict,
	"failed_precondition": http.StatusPreconditionFailed,
	"resource_exhausted":  http.StatusTooManyRequests,
	"internal":            http.StatusInternalServerError,
	"unavailable":         http.StatusServiceUnavailable,
}

type twirpError struct {
	code, msg  string
	retryAfter time.Duration
}

func (t *twirpError) Error() string { return t.code + ": " + t.msg }

func twerr(code, format string, args ...any) *twirpError {
	return &twirpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// writeTwirpError writes {"code":…,"msg":…}; @actions/cache reads msg.
func writeTwirpError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "msg": msg})
}

func (e *Emulator) serveTwirp(w http.ResponseWriter, r *http.Request) {
	resp, err := e.twirp(r)
	if err != nil {
		var te *twirpError
		if !errors.As(err, &te) {
			te = twerr("internal", "%v", err)
		}
		if te.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((te.retryAfter+time.Second-1)/time.Second)))
		}
		writeTwirpError(w, twirpStatus[te.code], te.code, te.msg)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (e *Emulator) twirp(r *http.Request) (any, error) {
	rest := strings.TrimPrefix(r.URL.Path, "/twirp/")
	service, method, _ := strings.Cut(rest, "/")
	if r.Method != http.MethodPost {
		return nil, twerr("bad_route", "unsupported method %q (only POST is allowed)", r.Method)
	}
	if service != cacheService {
		return nil, twerr("bad_route", "no handler for path %q", r.URL.Path)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/json" {
		return nil, twerr("bad_route", "unexpected Content-Type: %q (the emulator speaks Twirp JSON only)", r.Header.Get("Content-Type"))
	}
	id, err := e.authenticate(r)
	if err != nil {
		return nil, twerr("unauthenticated", "%v", err)
	}
	var req twirpRequest
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 1<<20))
	if err != nil {
		return nil, twerr("malformed", "reading request: %v", err)
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, twerr("malformed", "the json request could not be decoded: %v", err)
	}
	if req.RestoreKeys == nil {
		req.RestoreKeys = req.RestoreKeysCamel
	}
	if !req.SizeBytes.Set {
		req.SizeBytes = req.SizeBytesCamel
	}
	switch method {
	case "CreateCacheEntry":
		return e.createCacheEntry(id, req)
	case "FinalizeCacheEntryUpload":
		return e.finalizeCacheEntryUpload(r, id, req)
	case "GetCacheEntryDownloadURL":
		return e.getCacheEntryDownloadURL(r, id, req)
	}
	return nil, twerr("bad_route", "no handler for path %q", r.URL.Path)
}

func checkKeyVersion(key, version string) error {
	switch {
	case key == "":
		return twerr("invalid_argument", "key is required")
	case len(key) > 512:
		return twerr("invalid_argument", "key is longer than 512 characters")
	case version == "":
		return twerr("invalid_argument", "version is required")
	}
	return nil
}

func (e *Emulator) createCacheEntry(id Identity, req twirpRequest) (any, error) {
	if err := checkKeyVersion(req.Key, req.Version); err != nil {
		return nil, err
	}
	scope := id.Writable()
	if scope == "" {
		// @actions/cache recognises this prefix as a policy denial.
		return createResponse{Message: "cache write denied: the runtime token has no writable cache scope"}, nil
	}
	e.mu.Lock()
	en, err := e.reserve(id.Repo, scope, req.Key, req.Version)
	expired := e.faults.ExpiredURLs
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	u, err := e.signedURL(en.Blob, AccessWrite, expired)
	if err != nil {
		return nil, twerr("internal", "%v", err)
	}
	return createResponse{OK: true, SignedUploadURL: u}, nil
}

// reserve creates an unfinalized entry; callers hold e.mu.
func (e *Emulator) reserve(repo, scope, key, version string) (*Entry, error) {
	now := e.cfg.Now()
	if e.ix.find(repo, scope, key, version) != nil {
		return nil, twerr("already_exists", "cache entry with the same key, version, and scope already exists")
	}
	if wait, ok := e.ix.allowUpload(repo, e.faults.UploadsPerMinute, now); !ok {
		te := twerr("resource_exhausted", "cache upload rate limit of %d per minute exceeded", e.faults.UploadsPerMinute)
		te.retryAfter = max(wait, time.Second)
		return nil, te
	}
	e.ix.nextID++
	en := &Entry{
		ID: e.ix.nextID, Repo: repo, Scope: scope, Key: key, Version: version,
		CreatedAt: now, LastAccessedAt: now,
	}
	en.Blob = e.blobName(repo, en.ID)
	e.ix.entries[en.ID] = en
	return en, nil
}

func (e *Emulator) finalizeCacheEntryUpload(r *http.Request, id Identity, req twirpRequest) (any, error) {
	if err := checkKeyVersion(req.Key, req.Version); err != nil {
		return nil, err
	}
	scope := id.Writable()
	if scope == "" {
		return finalizeResponse{Message: "cache write denied: the runtime token has no writable cache scope"}, nil
	}
	e.mu.Lock()
	en := e.ix.find(id.Repo, scope, req.Key, req.Version)
	var blob string
	if en != nil {
		blob = en.Blob
	}
	finalized := en != nil && en.Finalized
	e.mu.Unlock()
	switch {
	case en == nil:
		return nil, twerr("not_found", "cache entry not found")
	case finalized:
		return nil, twerr("already_exists", "cache entry is already finalized")
	}
	size, err := e.cfg.Blobs.Size(r.Context(), blob)
	if errors.Is(err, ErrBlobNotFound) {
		return finalizeResponse{Message: "cache archive was not uploaded"}, nil
	}
	if err != nil {
		return nil, twerr("internal", "%v", err)
	}
	if req.SizeBytes.Set && req.SizeBytes.N != size {
		return finalizeResponse{Message: fmt.Sprintf("size_bytes %d does not match the uploaded archive (%d bytes)", req.SizeBytes.N, size)}, nil
	}
	entryID, evicted, err := e.finalize(en, size)
	if err != nil {
		return nil, err
	}
	e.deleteBlobs(r, evicted)
	return finalizeResponse{OK: true, EntryID: strconv.FormatInt(entryID, 10)}, nil
}

// finalize makes en visible and applies the quota.
func (e *Emulator) finalize(en *Entry, size int64) (int64, []string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.ix.entries[en.ID]; !ok {
		return 0, nil, twerr("not_found", "cache entry not found")
	}
	if en.Finalized {
		return 0, nil, twerr("already_exists", "cache entry is already finalized")
	}
	en.Finalized, en.Size, en.LastAccessedAt = true, size, e.cfg.Now()
	if e.faults.EvictEvery > 0 {
		return en.ID, nil, nil // the next batch applies the quota
	}
	return en.ID, e.ix.evict(en.Repo, e.faults.QuotaBytes), nil
}

func (e *Emulator) getCacheEntryDownloadURL(r *http.Request, id Identity, req twirpRequest) (any, error) {
	if err := checkKeyVersion(req.Key, req.Version); err != nil {
		return nil, err
	}
	scopes := id.Readable()
	if len(scopes) == 0 {
		// @actions/cache recognises this prefix as a policy denial.
		return nil, twerr("permission_denied", "cache read denied: the runtime token has no readable cache scope")
	}
	e.mu.Lock()
	en := e.ix.match(id.Repo, scopes, req.Key, req.RestoreKeys, req.Version)
	var blob, key string
	var evicted []string
	if en != nil {
		en.LastAccessedAt = e.cfg.Now()
		blob, key = en.Blob, en.Key
		evicted = e.evictAfterLookup(en)
	}
	expired := e.faults.ExpiredURLs
	e.mu.Unlock()
	if en == nil {
		return downloadResponse{}, nil
	}
	e.deleteBlobs(r, evicted)
	u, err := e.signedURL(blob, AccessRead, expired)
	if err != nil {
		return nil, twerr("internal", "%v", err)
	}
	return downloadResponse{OK: true, SignedDownloadURL: u, MatchedKey: key}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
