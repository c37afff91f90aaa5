// Package emulator is a faithful stand-in for GitHub's Actions cache
// service, served as an http.Handler (like go-containerregistry's
// pkg/registry). Archives live in a BlobStore (Azurite in tests) and move
// through signed URLs, as on GitHub.
//
// Endpoints:
//
//	POST /twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry          v2 (Twirp JSON)
//	POST /twirp/github.actions.results.api.v1.CacheService/FinalizeCacheEntryUpload
//	POST /twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL
//	GET  {any prefix}/_apis/artifactcache/cache?keys=a,b&version=v                    v1 (GHES)
//	POST {any prefix}/_apis/artifactcache/caches              reserve {key,version,cacheSize}
//	PATCH {any prefix}/_apis/artifactcache/caches/{id}        chunk, Content-Range: bytes a-b/*
//	POST {any prefix}/_apis/artifactcache/caches/{id}         commit {size}
//	GET|DELETE [/api/v3]/repos/{owner}/{repo}/actions/caches  REST management (key, ref, sort,
//	DELETE     [/api/v3]/repos/{owner}/{repo}/actions/caches/{id}    direction, per_page, page)
//	GET        [/api/v3]/repos/{owner}/{repo}/actions/cache/usage
//	GET|POST /_emulator/faults                                the Faults as JSON
//	GET  /healthz
//
// Runtime tokens are HS256 JWTs minted by MintToken with GitHub's `ac`
// claim; a forged, unsigned or expired token gets 401. Reads search the
// token's readable scopes (its writable ref first), writes go only to its
// writable ref. The REST API accepts any non-empty `Bearer`/`token`
// credential unless Config.RESTToken is set.
package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Faults are switchable misbehaviours for end-to-end tests. The zero value
// is a healthy service.
type Faults struct {
	// UploadsPerMinute, when > 0, answers 429 with Retry-After to cache
	// creations (v2 CreateCacheEntry, v1 reserve) past this many per
	// repository in a rolling minute. GitHub's limit is 200.
	UploadsPerMinute int `json:"uploads_per_minute"`
	// QuotaBytes, when > 0, is the per-repository budget: after a
	// finalize, least-recently-accessed entries are evicted (and their
	// blobs deleted) until usage fits. GitHub's default is 10 GB.
	QuotaBytes int64 `json:"quota_bytes"`
	// FailNext answers the next N cache-service or REST requests with
	// FailStatus (500 when zero); each failure decrements it.
	FailNext   int `json:"fail_next"`
	FailStatus int `json:"fail_status"`
	// ExpiredURLs hands out signed URLs that have already expired.
	ExpiredURLs bool `json:"expired_urls"`
	// EvictAfterLookup, when set, is a key prefix: a lookup that finds an
	// entry whose key starts with it answers, then evicts the entry (and
	// deletes its blob), as a quota eviction between a client's lookup and
	// its download would. Each key is evicted so once per SetFaults, so a
	// later re-upload of it stays.
	EvictAfterLookup string `json:"evict_after_lookup"`

	// Policies GitHub applies that tests of a single job do not want;
	// both are off at zero. The churn simulation (bench/churn) turns
	// them on.
	//
	// ExpireUnused, when > 0, removes entries not accessed for this long
	// (GitHub: 7 days), whatever the quota.
	ExpireUnused time.Duration `json:"expire_unused_ns,omitempty"`
	// EvictEvery, when > 0, applies QuotaBytes in batches, at most once in
	// each period of this length (GitHub: an hour, since November 2025),
	// instead of after each finalize: usage overshoots the quota until
	// the next batch.
	EvictEvery time.Duration `json:"evict_every_ns,omitempty"`
}

// Config configures an Emulator.
type Config struct {
	// Secret signs and verifies runtime tokens. Required.
	Secret []byte
	// Blobs stores archives. Required.
	Blobs BlobStore
	// RESTToken, when set, is the only token the REST management API
	// accepts. When empty, any non-empty `Authorization: Bearer|token X`
	// is accepted (the emulator has no users to check it against).
	RESTToken string
	// SignedURLTTL is the lifetime of signed URLs (default 10 minutes).
	SignedURLTTL time.Duration
	// Faults to start with.
	Faults Faults
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logf, when set, gets one line per request (never tokens or URLs'
	// query strings).
	Logf func(format string, args ...any)
}

// Emulator is the cache service. It is safe for concurrent use.
type Emulator struct {
	cfg      Config
	mux      *http.ServeMux
	instance string // random blob-name prefix, so a restarted emulator never reuses a blob name

	mu     sync.Mutex
	ix     *index
	faults Faults
	// lookupEvicted are the keys the EvictAfterLookup fault has evicted.
	lookupEvicted map[string]bool
	// lastBatch is the period of the last EvictEvery batch.
	lastBatch time.Time
}

// New checks cfg and returns an Emulator.
func New(cfg Config) (*Emulator, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("emulator: empty token secret")
	}
	if cfg.Blobs == nil {
		return nil, errors.New("emulator: no blob store")
	}
	if cfg.SignedURLTTL <= 0 {
		cfg.SignedURLTTL = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Faults.validate(); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	e := &Emulator{cfg: cfg, ix: newIndex(), faults: cfg.Faults, instance: randomHex(8)}
	e.routes()
	return e, nil
}

func (f Faults) validate() error {
	switch {
	case f.UploadsPerMinute < 0:
		return fmt.Errorf("faults: uploads_per_minute %d is negative", f.UploadsPerMinute)
	case f.QuotaBytes < 0:
		return fmt.Errorf("faults: quota_bytes %d is negative", f.QuotaBytes)
	case f.FailNext < 0:
		return fmt.Errorf("faults: fail_next %d is negative", f.FailNext)
	case f.ExpireUnused < 0 || f.EvictEvery < 0:
		return fmt.Errorf("faults: expire_unused_ns and evict_every_ns must not be negative")
	case f.FailStatus != 0 && (f.FailStatus < 500 || f.FailStatus > 599):
		return fmt.Errorf("faults: fail_status %d is not a 5xx status", f.FailStatus)
	}
	return nil
}

// Faults returns the current faults.
func (e *Emulator) Faults() Faults {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faults
}

// SetFaults replaces the faults.
func (e *Emulator) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	e.mu.Lock()
	e.faults = f
	e.lookupEvicted = nil
	e.mu.Unlock()
	return nil
}

// evictAfterLookup applies the EvictAfterLookup fault to the entry a
// lookup just found, returning the blob to delete. e.mu is held.
func (e *Emulator) evictAfterLookup(en *Entry) []string {
	p := e.faults.EvictAfterLookup
	if p == "" || !strings.HasPrefix(en.Key, p) || e.lookupEvicted[en.Key] {
		return nil
	}
	if e.lookupEvicted == nil {
		e.lookupEvicted = map[string]bool{}
	}
	e.lookupEvicted[en.Key] = true
	return e.ix.remove(en)
}

// Housekeep applies the ExpireUnused and EvictEvery policies as of the
// clock's now: entries unused for too long go, and when a new EvictEvery
// period has begun, least recently used entries go until each repository
// fits the quota. Every API request runs it first; a caller that reads
// Entries on a clock it moved itself runs it before.
func (e *Emulator) Housekeep(ctx context.Context) {
	e.mu.Lock()
	now := e.cfg.Now()
	var blobs []string
	if d := e.faults.ExpireUnused; d > 0 {
		blobs = e.ix.expire(now.Add(-d))
	}
	if d := e.faults.EvictEvery; d > 0 && e.faults.QuotaBytes > 0 {
		if p := now.Truncate(d); p.After(e.lastBatch) {
			e.lastBatch = p
			for _, repo := range e.ix.repos() {
				blobs = append(blobs, e.ix.evict(repo, e.faults.QuotaBytes)...)
			}
		}
	}
	e.mu.Unlock()
	e.deleteBlobNames(ctx, blobs)
}

// Token mints a runtime token signed with this emulator's secret.
func (e *Emulator) Token(o TokenOptions) (string, error) {
	return MintToken(e.cfg.Secret, o)
}

// Entries returns a copy of repo's finalized entries, oldest first.
func (e *Emulator) Entries(repo string) []Entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Entry
	for _, en := range e.ix.list(repo) {
		c := *en
		c.blocks = nil
		out = append(out, c)
	}
	return out
}

func (e *Emulator) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	m.HandleFunc("GET /_emulator/faults", e.getFaults)
	m.HandleFunc("POST /_emulator/faults", e.postFaults)
	m.HandleFunc("/twirp/", e.serveTwirp)
	for _, p := range []string{"", "/api/v3"} {
		m.HandleFunc("GET "+p+"/repos/{owner}/{repo}/actions/caches", e.restList)
		m.HandleFunc("DELETE "+p+"/repos/{owner}/{repo}/actions/caches", e.restDeleteByKey)
		m.HandleFunc("DELETE "+p+"/repos/{owner}/{repo}/actions/caches/{id}", e.restDeleteByID)
		m.HandleFunc("GET "+p+"/repos/{owner}/{repo}/actions/cache/usage", e.restUsage)
	}
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		restError(w, http.StatusNotFound, "Not Found")
	})
	e.mux = m
}

// v1Marker starts the legacy API's path; what precedes it is opaque, as in
// GitHub's ACTIONS_CACHE_URL (https://artifactcache…/<id>/).
const v1Marker = "/_apis/artifactcache/"

// ServeHTTP routes a request, injecting 5xx faults into API calls.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e.cfg.Logf != nil {
		e.cfg.Logf("%s %s", r.Method, r.URL.Path)
	}
	kind := apiKind(r.URL.Path)
	if kind != "" {
		e.Housekeep(r.Context())
		if status, ok := e.takeFailure(); ok {
			msg := "injected fault"
			switch kind {
			case "twirp":
				code := "internal"
				if status == http.StatusServiceUnavailable {
					code = "unavailable"
				}
				writeTwirpError(w, status, code, msg)
			case "v1":
				v1Error(w, status, "", msg)
			default:
				restError(w, status, msg)
			}
			return
		}
	}
	if i := strings.Index(r.URL.Path, v1Marker); i >= 0 {
		e.serveV1(w, r, r.URL.Path[i+len(v1Marker):])
		return
	}
	e.mux.ServeHTTP(w, r)
}

func apiKind(path string) string {
	switch {
	case strings.HasPrefix(path, "/twirp/"):
		return "twirp"
	case strings.Contains(path, v1Marker):
		return "v1"
	case strings.HasPrefix(path, "/repos/"), strings.HasPrefix(path, "/api/v3/repos/"):
		return "rest"
	}
	return ""
}

func (e *Emulator) takeFailure() (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.faults.FailNext <= 0 {
		return 0, false
	}
	e.faults.FailNext--
	if e.faults.FailStatus == 0 {
		return http.StatusInternalServerError, true
	}
	return e.faults.FailStatus, true
}

func (e *Emulator) getFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, e.Faults())
}

// postFaults replaces the faults with the JSON body; unknown fields are
// refused so a typo cannot silently leave a fault off.
func (e *Emulator) postFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "decoding faults: " + err.Error()})
		return
	}
	if err := e.SetFaults(f); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// signedURL signs a blob URL, already expired under the ExpiredURLs fault.
func (e *Emulator) signedURL(name string, access BlobAccess, expired bool) (string, error) {
	exp := e.cfg.Now().Add(e.cfg.SignedURLTTL)
	if expired {
		exp = e.cfg.Now().Add(-time.Hour)
	}
	return e.cfg.Blobs.SignedURL(name, access, exp)
}

func (e *Emulator) blobName(repo string, id int64) string {
	return fmt.Sprintf("%s/%s/%d", strings.ToLower(repo), e.instance, id)
}

// authenticate verifies the runtime token in `Authorization: Bearer`.
func (e *Emulator) authenticate(r *http.Request) (Identity, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return Identity{}, fmt.Errorf("%w: missing bearer runtime token", errUnauthenticated)
	}
	return verifyToken(e.cfg.Secret, strings.TrimSpace(tok), e.cfg.Now)
}

// deleteBlobs removes blobs outside the lock; failures only leave garbage.
func (e *Emulator) deleteBlobs(r *http.Request, names []string) {
	e.deleteBlobNames(r.Context(), names)
}

func (e *Emulator) deleteBlobNames(ctx context.Context, names []string) {
	for _, n := range names {
		if err := e.cfg.Blobs.Delete(ctx, n); err != nil && e.cfg.Logf != nil {
			e.cfg.Logf("deleting evicted blob: %v", err)
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
