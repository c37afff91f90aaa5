// Package endpoint serves the GitHub Actions cache service v2 API (Twirp,
// and the blob URLs it hands out) to one build's BuildKit daemon, whose
// stock type=gha backend is pointed at it (url_v2, version=2, token). It
// forwards every call to the real cache service with the real runtime
// token through ghacache, so the daemon never sees that token, a signed
// Azure URL or the service's address: it gets a token minted for this
// build, and blob URLs that point back here and that this server streams
// to and from the signed ones.
//
// The daemon's own importer is lazy (it looks each layer up before use
// and downloads only what the build reads), and the entries are stock
// gha entries by construction. Uploads stream: the daemon's blocks are
// re-cut into large blocks put in parallel as they arrive; the digest of
// a layer blob is checked before its block list is committed, and the
// entry is finalized only after that.
package endpoint

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	digest "github.com/opencontainers/go-digest"

	"github.com/bkcache/bkcache/ghacache"
)

const twirpPrefix = "/twirp/github.actions.results.api.v1.CacheService/"

// blobKeyPrefix names BuildKit's layer entries; the rest of the key is
// the blob's digest, which an upload is checked against.
const blobKeyPrefix = "buildkit-blob-1-"

// maxBackground bounds the layer blobs being committed at once.
const maxBackground = 4

// maxIndex bounds the index read for prefetching.
const maxIndex = 16 << 20

// maxBlock bounds one block the daemon puts (its Azure SDK sends 1 MiB).
const maxBlock = 256 << 20

// Options configure a Server.
type Options struct {
	// Scopes are the cache scopes the minted token names, in order; the
	// daemon reads one index per scope and writes the index of the last
	// writable one, so only the ref bkcache may write should be writable.
	Scopes []ghacache.TokenScope
	// Write lets the daemon create entries; without it CreateCacheEntry
	// is refused as a policy denial.
	Write bool
	// Logf, if set, gets one line per failed forward (redacted).
	Logf func(string, ...any)
}

// Stats count what the daemon did through the endpoint.
type Stats struct {
	Lookups, Hits        int64
	Downloads, BytesDown int64
	Uploads, BytesUp     int64
	Evicted              int64 // layer lookups that found the entry but not its blob: misses
	Rejected             int64 // requests refused for a missing or wrong credential
}

// Server is one build's endpoint.
type Server struct {
	c     *ghacache.Client
	opt   Options
	token string
	srv   *http.Server
	base  string

	mu        sync.Mutex
	downloads map[string]ghacache.Entry // blob id → entry
	byKey     map[string]string         // key/version → blob id (one id per entry)
	uploads   map[string]*upload        // blob id → upload
	pending   map[string]*upload        // key/version → upload awaiting finalize
	verified  map[string]bool           // keys whose blob was seen this build
	// prefetches are layer lookups started when an index was read.
	prefetches map[string]*prefetch // key/version → lookup

	// Layer blobs are committed and finalized in the background once
	// their digest checks out, so the daemon's serial exporter moves on
	// to the next layer; an index waits for all of them (bg) and is
	// refused if one failed (bgErr).
	bg     sync.WaitGroup
	bgSem  chan struct{}
	bgErr  error
	bgCtx  context.Context
	bgStop context.CancelFunc

	stats struct {
		lookups, hits, evicted, downloads, bytesDown, uploads, bytesUp, rejected atomic.Int64
	}
}

type upload struct {
	mu      sync.Mutex
	u       *ghacache.Upload
	key     string
	version string
	want    digest.Digest // "" when the key names no digest (an index)
	h       hash.Hash
	blocks  []string // block IDs in the order they arrived
	seen    map[string]bool
	size    int64
	done    bool // committed: the block list is in and the digest checked
	sealed  bool // the digest checked; committed and finalized in the background
	failed  error
}

// Listen starts a server on addr: loopback, or the gateway of the
// daemon's container network; the caller picks where the daemon can
// connect, never all interfaces. Anything without the minted token, or
// without a blob id it handed out, is refused.
func Listen(c *ghacache.Client, addr string, opt Options) (*Server, error) {
	if !c.V2() {
		return nil, errors.New("cache endpoint: the cache service speaks v1 (GHES); the endpoint forwards to v2 only")
	}
	tok, err := mintToken(opt.Scopes)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cache endpoint: %w", err)
	}
	s := &Server{
		c: c, opt: opt, token: tok,
		base:      "http://" + ln.Addr().String(),
		downloads: map[string]ghacache.Entry{}, byKey: map[string]string{},
		uploads: map[string]*upload{}, pending: map[string]*upload{}, verified: map[string]bool{},
		prefetches: map[string]*prefetch{},
	}
	s.bgSem = make(chan struct{}, maxBackground)
	s.bgCtx, s.bgStop = context.WithCancel(context.Background())
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the url_v2 to give the daemon.
func (s *Server) URL() string { return s.base + "/" }

// Token is the credential minted for this build, to give the daemon.
func (s *Server) Token() string { return s.token }

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	return Stats{
		Lookups: s.stats.lookups.Load(), Hits: s.stats.hits.Load(),
		Downloads: s.stats.downloads.Load(), BytesDown: s.stats.bytesDown.Load(),
		Uploads: s.stats.uploads.Load(), BytesUp: s.stats.bytesUp.Load(),
		Evicted: s.stats.evicted.Load(), Rejected: s.stats.rejected.Load(),
	}
}

// Close stops serving and aborts uploads the daemon never finished.
//
// It is called once the build is over, so whatever is still being served
// was abandoned by the daemon: chiefly a lazy layer read, for which
// BuildKit asks "bytes=N-" and stops reading once it has what it needs,
// leaving the rest of the blob's copy blocked on a full socket. A graceful
// Shutdown would wait for that copy to time out (it added 5 s to fully
// cached builds), so the connections are closed at once.
func (s *Server) Close() error {
	err := s.srv.Close()
	// Commits the daemon was told were under way end first; a build that
	// wrote no index leaves them finalized but unnamed, as stock does.
	s.bg.Wait()
	s.bgStop()
	s.mu.Lock()
	ups := make([]*upload, 0, len(s.uploads))
	for _, u := range s.uploads {
		ups = append(ups, u)
	}
	s.mu.Unlock()
	for _, u := range ups {
		u.u.Abort()
	}
	return err
}

// mintToken makes the daemon's credential: a JWT because BuildKit reads
// the scopes (ac), exp and nbf from it, unverified; its random jti makes
// it unguessable, and the server accepts exactly this string. It is
// signed with a throwaway key: nothing verifies the signature.
func mintToken(scopes []ghacache.TokenScope) (string, error) {
	type ac struct {
		Scope      string `json:"Scope"`
		Permission int    `json:"Permission"`
	}
	acs := make([]ac, 0, len(scopes))
	for _, sc := range scopes {
		p := 1
		if sc.Write {
			p = 3
		}
		acs = append(acs, ac{sc.Ref, p})
	}
	acj, err := json.Marshal(acs)
	if err != nil {
		return "", err
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"ac":  string(acj),
		"jti": randomHex(32),
		"nbf": now.Add(-time.Minute).Unix(),
		"iat": now.Unix(),
		"exp": now.Add(24 * time.Hour).Unix(),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(randomHex(32)))
	if err != nil {
		return "", fmt.Errorf("cache endpoint: minting the token: %w", err)
	}
	return tok, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, twirpPrefix):
		if !s.authorized(r) {
			s.stats.rejected.Add(1)
			writeTwirpError(w, http.StatusUnauthorized, "unauthenticated", "missing or wrong credential")
			return
		}
		if r.Method != http.MethodPost {
			writeTwirpError(w, http.StatusNotFound, "bad_route", "only POST")
			return
		}
		s.twirp(w, r, strings.TrimPrefix(r.URL.Path, twirpPrefix))
	case strings.HasPrefix(r.URL.Path, "/blob/"):
		// The blob id is the credential here, as a SAS signature is on
		// Azure: random, and handed out only to the token's holder.
		id := strings.TrimPrefix(r.URL.Path, "/blob/")
		// As Azure does on every answer; BuildKit's client logs (and
		// dereferences) the request id of an upload.
		w.Header().Set("x-ms-request-id", randomHex(8))
		w.Header().Set("x-ms-version", "2023-11-03")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			s.download(w, r, id)
		case http.MethodPut:
			s.put(w, r, id)
		default:
			azureError(w, http.StatusMethodNotAllowed, "UnsupportedHttpVerb", "unsupported method")
		}
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

type twirpRequest struct {
	Key         string          `json:"key"`
	Version     string          `json:"version"`
	RestoreKeys []string        `json:"restore_keys"`
	SizeBytes   json.RawMessage `json:"size_bytes"`
}

func (s *Server) twirp(w http.ResponseWriter, r *http.Request, method string) {
	var req twirpRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeTwirpError(w, http.StatusBadRequest, "malformed", "the json request could not be decoded")
		return
	}
	if req.Key == "" || req.Version == "" {
		writeTwirpError(w, http.StatusBadRequest, "invalid_argument", "key and version are required")
		return
	}
	switch method {
	case "GetCacheEntryDownloadURL":
		s.lookup(w, r, req)
	case "CreateCacheEntry":
		s.create(w, r, req)
	case "FinalizeCacheEntryUpload":
		s.finalize(w, r, req)
	default:
		writeTwirpError(w, http.StatusNotFound, "bad_route", "no handler for "+method)
	}
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request, req twirpRequest) {
	s.stats.lookups.Add(1)
	if s.committing(req.Key + "\x00" + req.Version) {
		// This build's own upload of the key: its lookup sees it done.
		s.bg.Wait()
	}
	var res resolved
	if pf := s.prefetched(r.Context(), req); pf != nil && pf.err == nil {
		res = *pf
	} else {
		// Forwarded as asked: BuildKit names the key among the restore keys.
		res = s.resolve(r.Context(), req.Key, req.RestoreKeys, req.Version)
	}
	if res.err != nil {
		s.fail(w, "lookup", res.err)
		return
	}
	if res.evicted {
		s.stats.evicted.Add(1)
	}
	if !res.ok {
		writeJSON(w, map[string]any{"ok": false, "signed_download_url": "", "matched_key": ""})
		return
	}
	e := res.e
	s.stats.hits.Add(1)
	s.mu.Lock()
	s.verified[e.Key] = true
	kv := e.Key + "\x00" + req.Version
	id, known := s.byKey[kv]
	if !known {
		id = randomHex(16)
		s.byKey[kv] = id
	}
	// A fresh lookup refreshes the signed URL behind the id.
	s.downloads[id] = e
	s.mu.Unlock()
	writeJSON(w, map[string]any{"ok": true, "signed_download_url": s.base + "/blob/" + id, "matched_key": e.Key})
}

// resolved is the outcome of a lookup.
type resolved struct {
	e       ghacache.Entry
	ok      bool
	evicted bool // found, but its blob is gone: a miss
	err     error
}

// resolve looks key up. BuildKit checks a layer only by this lookup (Info)
// before it relies on a cached result, so a layer whose blob is gone must
// be a miss now, not a failed read later in the build.
func (s *Server) resolve(ctx context.Context, key string, restore []string, version string) resolved {
	e, ok, err := s.c.Lookup(ctx, key, restore, version)
	if err != nil || !ok {
		return resolved{err: err}
	}
	if strings.HasPrefix(e.Key, blobKeyPrefix) && !s.present(e.Key) && s.gone(ctx, e) {
		return resolved{evicted: true}
	}
	return resolved{e: e, ok: true}
}

// prefetch is one layer lookup started when its index was read.
type prefetch struct {
	done chan struct{}
	res  resolved
}

// maxPrefetch bounds the layer lookups an index starts, and
// prefetchConcurrency how many run at once.
const (
	maxPrefetch         = 500
	prefetchConcurrency = 8
)

// prefetchIndex starts the lookups of the layers an index names, in
// parallel, as soon as the daemon has read the index: BuildKit then looks
// them up one by one as it loads cached results, and each answer is ready.
func (s *Server) prefetchIndex(dt []byte, version string) {
	var idx struct {
		Layers []struct {
			Blob digest.Digest `json:"blob"`
		} `json:"layers"`
	}
	if json.Unmarshal(dt, &idx) != nil || len(idx.Layers) > maxPrefetch {
		return
	}
	sem := make(chan struct{}, prefetchConcurrency)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range idx.Layers {
		key := blobKeyPrefix + l.Blob.String()
		kv := key + "\x00" + version
		if l.Blob.Validate() != nil || s.prefetches[kv] != nil || s.pending[kv] != nil {
			continue
		}
		pf := &prefetch{done: make(chan struct{})}
		s.prefetches[kv] = pf
		go func() {
			defer close(pf.done)
			sem <- struct{}{}
			defer func() { <-sem }()
			pf.res = s.resolve(s.bgCtx, key, []string{key}, version)
		}()
	}
}

// prefetched is the prefetched answer to an exact-key lookup, or nil.
func (s *Server) prefetched(ctx context.Context, req twirpRequest) *resolved {
	if len(req.RestoreKeys) > 1 || (len(req.RestoreKeys) == 1 && req.RestoreKeys[0] != req.Key) {
		return nil
	}
	s.mu.Lock()
	pf := s.prefetches[req.Key+"\x00"+req.Version]
	s.mu.Unlock()
	if pf == nil {
		return nil
	}
	select {
	case <-pf.done:
		return &pf.res
	case <-ctx.Done():
		return nil
	}
}

// committing reports whether this build's upload of key/version is being
// committed in the background.
func (s *Server) committing(kv string) bool {
	s.mu.Lock()
	up := s.pending[kv]
	s.mu.Unlock()
	if up == nil {
		return false
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	return up.sealed && !up.done && up.failed == nil
}

// present reports whether key's blob was read or written in this build:
// the importer's check and the exporter's of the same layer cost one probe.
func (s *Server) present(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.verified[key]
}

// gone reports whether e's blob is missing: its first byte cannot be read.
// Other failures are left to the daemon's read.
func (s *Server) gone(ctx context.Context, e ghacache.Entry) bool {
	_, err := s.c.Ranges(e).ReadRange(ctx, make([]byte, 1), 0)
	return errors.Is(err, ghacache.ErrNotFound)
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, req twirpRequest) {
	if !s.opt.Write {
		// The toolkit's prefix for a policy denial.
		writeJSON(w, map[string]any{"ok": false, "signed_upload_url": "", "message": "cache write denied: this build does not export to the GitHub Actions cache"})
		return
	}
	if !strings.HasPrefix(req.Key, blobKeyPrefix) {
		// An index names the layers: all of them must be in the cache.
		s.bg.Wait()
		s.mu.Lock()
		bgErr := s.bgErr
		s.mu.Unlock()
		if bgErr != nil {
			s.fail(w, "reserve", fmt.Errorf("not writing %s: a layer upload failed: %w", req.Key, bgErr))
			return
		}
	}
	u, err := s.c.Reserve(r.Context(), req.Key, req.Version)
	if errors.Is(err, ghacache.ErrAlreadyExists) {
		// BuildKit reads already_exists as os.ErrExist: another writer
		// has (or is writing) the entry, which it skips.
		writeTwirpError(w, http.StatusConflict, "already_exists", "cache entry with the same key, version, and scope already exists")
		return
	}
	if err != nil {
		s.fail(w, "reserve", err)
		return
	}
	up := &upload{u: u, key: req.Key, version: req.Version, h: sha256.New(), seen: map[string]bool{}}
	if d, ok := strings.CutPrefix(req.Key, blobKeyPrefix); ok {
		if dg, err := digest.Parse(d); err == nil && dg.Algorithm() == digest.SHA256 {
			up.want = dg
		}
	}
	id := randomHex(16)
	s.mu.Lock()
	s.uploads[id] = up
	s.pending[req.Key+"\x00"+req.Version] = up
	// This build writes it: an earlier prefetched miss no longer holds.
	delete(s.prefetches, req.Key+"\x00"+req.Version)
	s.mu.Unlock()
	writeJSON(w, map[string]any{"ok": true, "signed_upload_url": s.base + "/blob/" + id, "message": ""})
}

func (s *Server) finalize(w http.ResponseWriter, r *http.Request, req twirpRequest) {
	kv := req.Key + "\x00" + req.Version
	s.mu.Lock()
	up := s.pending[kv]
	s.mu.Unlock()
	if up == nil {
		writeTwirpError(w, http.StatusNotFound, "not_found", "cache entry not found")
		return
	}
	size, err := strconv.ParseInt(strings.Trim(string(req.SizeBytes), `"`), 10, 64)
	up.mu.Lock()
	done, failed, got, sealed := up.done, up.failed, up.size, up.sealed
	up.mu.Unlock()
	if sealed && failed == nil && err == nil && size == got {
		// The background commit finalizes it; an index waits for that.
		writeJSON(w, map[string]any{"ok": true, "entry_id": "1", "message": ""})
		return
	}
	switch {
	case failed != nil:
		writeJSON(w, map[string]any{"ok": false, "entry_id": "0", "message": "cache archive was not uploaded: " + failed.Error()})
		return
	case !done:
		writeJSON(w, map[string]any{"ok": false, "entry_id": "0", "message": "cache archive was not uploaded"})
		return
	case err != nil || size != got:
		writeJSON(w, map[string]any{"ok": false, "entry_id": "0", "message": fmt.Sprintf("size_bytes does not match the uploaded archive (%d bytes)", got)})
		return
	}
	if err := up.u.Finalize(r.Context(), size); err != nil {
		s.fail(w, "finalize", err)
		return
	}
	s.mu.Lock()
	delete(s.pending, kv)
	s.verified[req.Key] = true
	s.mu.Unlock()
	s.stats.uploads.Add(1)
	s.stats.bytesUp.Add(size)
	writeJSON(w, map[string]any{"ok": true, "entry_id": "1", "message": ""})
}

// fail answers a forward that failed with a Twirp internal error. The
// message is ghacache's, which redacts URLs and tokens.
func (s *Server) fail(w http.ResponseWriter, op string, err error) {
	if s.opt.Logf != nil {
		s.opt.Logf("cache endpoint: %s: %v", op, err)
	}
	code, status := "internal", http.StatusInternalServerError
	if errors.Is(err, ghacache.ErrRateLimited) {
		code, status = "resource_exhausted", http.StatusTooManyRequests
	}
	writeTwirpError(w, status, code, op+" failed")
}

func (s *Server) download(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	e, ok := s.downloads[id]
	s.mu.Unlock()
	if !ok {
		azureError(w, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
		return
	}
	off, end, ranged, err := parseRange(r)
	if err != nil {
		azureError(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", err.Error())
		return
	}
	body, size, err := s.c.LoadAt(r.Context(), e, off)
	if errors.Is(err, ghacache.ErrNotFound) {
		azureError(w, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
		return
	}
	if err != nil {
		if s.opt.Logf != nil {
			s.opt.Logf("cache endpoint: download: %v", err)
		}
		azureError(w, http.StatusBadGateway, "InternalError", "download failed")
		return
	}
	defer body.Close()
	var rd io.Reader = body
	n := size - off
	if end >= 0 && (size < 0 || end < size) {
		n = end - off + 1
		rd = io.LimitReader(body, n)
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	h.Set("x-ms-blob-type", "BlockBlob")
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(n, 10))
	}
	status := http.StatusOK
	if ranged {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	s.stats.downloads.Add(1)
	var index *bytes.Buffer
	if strings.HasPrefix(e.Key, "index-") && !ranged && size >= 0 && size <= maxIndex {
		index = &bytes.Buffer{}
		rd = io.TeeReader(rd, index)
	}
	c, err := io.Copy(w, rd)
	s.stats.bytesDown.Add(c)
	if index != nil && err == nil && c == size {
		s.prefetchIndex(index.Bytes(), e.Version)
	}
}

// parseRange reads x-ms-range (what the Azure SDK sends) or Range:
// "bytes=N-" or "bytes=N-M". end is -1 when open.
func parseRange(r *http.Request) (off, end int64, ranged bool, err error) {
	v := r.Header.Get("x-ms-range")
	if v == "" {
		v = r.Header.Get("Range")
	}
	if v == "" {
		return 0, -1, false, nil
	}
	spec, ok := strings.CutPrefix(v, "bytes=")
	a, b, ok2 := strings.Cut(spec, "-")
	if !ok || !ok2 || strings.Contains(spec, ",") {
		return 0, 0, false, fmt.Errorf("unsupported range %q", v)
	}
	if off, err = strconv.ParseInt(a, 10, 64); err != nil || off < 0 {
		return 0, 0, false, fmt.Errorf("unsupported range %q", v)
	}
	end = -1
	if b != "" {
		if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < off {
			return 0, 0, false, fmt.Errorf("unsupported range %q", v)
		}
	}
	return off, end, true, nil
}

// put handles the Azure calls the daemon's upload makes: Put Block, Put
// Block List, and Put Blob for a blob smaller than one block.
func (s *Server) put(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	up := s.uploads[id]
	s.mu.Unlock()
	if up == nil {
		azureError(w, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
		return
	}
	q := r.URL.Query()
	switch q.Get("comp") {
	case "block":
		s.putBlock(w, r, up, q.Get("blockid"))
	case "blocklist":
		s.putBlockList(w, r, up)
	case "":
		s.putBlob(w, r, up)
	default:
		azureError(w, http.StatusBadRequest, "UnsupportedQueryParameter", "unsupported comp")
	}
}

func (s *Server) putBlock(w http.ResponseWriter, r *http.Request, up *upload, blockID string) {
	if blockID == "" {
		azureError(w, http.StatusBadRequest, "InvalidQueryParameterValue", "blockid is required")
		return
	}
	// A block is read whole before any of it is passed on, so a broken
	// request (which the SDK retries) never adds half a block.
	if r.ContentLength < 0 || r.ContentLength > maxBlock {
		azureError(w, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "block too large or of unknown length")
		return
	}
	b := getDaemonBlock(int(r.ContentLength))
	defer putDaemonBlock(b)
	if _, err := io.ReadFull(r.Body, b); err != nil {
		azureError(w, http.StatusBadRequest, "InvalidInput", "reading the block")
		return
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.done || up.failed != nil {
		azureError(w, http.StatusConflict, "InvalidBlobOrBlock", "the upload is closed")
		return
	}
	if !up.seen[blockID] {
		// A block id seen before is a retry of a block already passed on.
		if _, err := up.u.Write(b); err != nil {
			up.failed = err
			if s.opt.Logf != nil {
				s.opt.Logf("cache endpoint: upload %s: %v", up.key, err)
			}
			azureError(w, http.StatusBadGateway, "InternalError", "upload failed")
			return
		}
		up.h.Write(b)
		up.size += int64(len(b))
		up.seen[blockID] = true
		up.blocks = append(up.blocks, blockID)
	}
	w.WriteHeader(http.StatusCreated)
}

// daemonBlocks reuse the buffers the daemon's blocks are read into (its
// SDK sends 1 MiB blocks, one at a time): Write copies them on.
var daemonBlocks sync.Pool

func getDaemonBlock(n int) []byte {
	if b, ok := daemonBlocks.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]byte, n)
}

func putDaemonBlock(b []byte) { daemonBlocks.Put(&b) }

type blockList struct {
	Latest      []string `xml:"Latest"`
	Committed   []string `xml:"Committed"`
	Uncommitted []string `xml:"Uncommitted"`
}

func (s *Server) putBlockList(w http.ResponseWriter, r *http.Request, up *upload) {
	var bl blockList
	if err := xml.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&bl); err != nil {
		azureError(w, http.StatusBadRequest, "InvalidXmlDocument", "the block list could not be decoded")
		return
	}
	ids := append(append(bl.Latest, bl.Uncommitted...), bl.Committed...)
	up.mu.Lock()
	defer up.mu.Unlock()
	// Blocks are passed on as they arrive, so the list must name them in
	// that order; the daemon's SDK uploads one block at a time.
	if !slices.Equal(ids, up.blocks) {
		up.fail(s, errors.New("the block list does not name the blocks in the order they arrived"))
		azureError(w, http.StatusBadRequest, "InvalidBlockList", "the block list does not match the blocks received")
		return
	}
	s.commit(w, r, up)
}

func (s *Server) putBlob(w http.ResponseWriter, r *http.Request, up *upload) {
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.done || up.failed != nil || len(up.blocks) > 0 {
		azureError(w, http.StatusConflict, "InvalidBlobOrBlock", "the upload is closed")
		return
	}
	n, err := io.Copy(io.MultiWriter(up.u, up.h), r.Body)
	up.size += n
	if err != nil {
		up.fail(s, fmt.Errorf("reading the blob: %w", err))
		azureError(w, http.StatusBadRequest, "InvalidInput", "reading the blob")
		return
	}
	s.commit(w, r, up)
}

// commit checks the digest, then commits the blob; callers hold up.mu.
func (s *Server) commit(w http.ResponseWriter, r *http.Request, up *upload) {
	if up.want != "" {
		if got := digest.NewDigest(digest.SHA256, up.h); got != up.want {
			up.fail(s, fmt.Errorf("digest mismatch: got %s", got))
			azureError(w, http.StatusBadRequest, "Md5Mismatch", "the blob does not match the digest its key names")
			return
		}
	}
	if up.want != "" {
		up.sealed = true
		s.background(up)
		w.WriteHeader(http.StatusCreated)
		return
	}
	if _, err := up.u.Commit(r.Context()); err != nil {
		up.failed = err
		if s.opt.Logf != nil {
			s.opt.Logf("cache endpoint: upload %s: %v", up.key, err)
		}
		azureError(w, http.StatusBadGateway, "InternalError", "upload failed")
		return
	}
	up.done = true
	w.WriteHeader(http.StatusCreated)
}

// background commits and finalizes a sealed layer blob; it waits while
// maxBackground are under way. Callers hold up.mu.
func (s *Server) background(up *upload) {
	s.bgSem <- struct{}{}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer func() { <-s.bgSem }()
		size, err := up.u.Commit(s.bgCtx)
		if err == nil {
			err = up.u.Finalize(s.bgCtx, size)
		}
		up.mu.Lock()
		up.done, up.failed = err == nil, err
		up.mu.Unlock()
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.bgErr = errors.Join(s.bgErr, err)
			if s.opt.Logf != nil {
				s.opt.Logf("cache endpoint: upload %s: %v", up.key, err)
			}
			return
		}
		s.verified[up.key] = true
		s.stats.uploads.Add(1)
		s.stats.bytesUp.Add(size)
	}()
}

// fail aborts the upload; callers hold up.mu.
func (up *upload) fail(s *Server, err error) {
	up.failed = err
	up.u.Abort()
	if s.opt.Logf != nil {
		s.opt.Logf("cache endpoint: upload %s refused: %v", up.key, err)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeTwirpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "msg": msg})
}

func azureError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-ms-error-code", code)
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}
