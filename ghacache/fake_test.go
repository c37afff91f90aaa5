package ghacache

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeService is a small in-test cache service (v2 Twirp and v1 REST) with
// an Azure-like blob endpoint, so the client's wire format and failure
// handling can be checked without the emulator. Signed URLs carry a sig
// that the blob endpoint checks.
type fakeService struct {
	t     *testing.T
	srv   *httptest.Server
	token string
	sig   string

	mu        sync.Mutex
	entries   map[string]*fakeEntry // by key
	seq       int
	blocks    map[string]map[string][]byte // staged blocks by blob
	blobs     map[string][]byte
	blockList map[string][]string // committed order by blob
	requests  []string            // "METHOD path?comp" log
	// fault, if set, may answer a request itself (return true).
	fault func(w http.ResponseWriter, r *http.Request) bool
}

type fakeEntry struct {
	key, version, blob string
	size               int64
	seq                int
	done               bool
}

func newFakeService(t *testing.T) *fakeService {
	f := &fakeService{
		t: t, token: "eyJhbGciOiJub25lIn0.eyJhYyI6IltdIn0.runtime-token-secret",
		sig:     "SECRETSIG%2Babc%3D",
		entries: map[string]*fakeEntry{}, blocks: map[string]map[string][]byte{},
		blobs: map[string][]byte{}, blockList: map[string][]string{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeService) signed(blob string) string {
	return f.srv.URL + "/blob/" + blob + "?sv=2023-11-03&sp=rw&se=2099-01-01&sig=" + f.sig
}

func (f *fakeService) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path+"?"+r.URL.Query().Get("comp"))
	fault := f.fault
	f.mu.Unlock()
	if fault != nil && fault(w, r) {
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/blob/"):
		f.serveBlob(w, r)
	case strings.HasPrefix(r.URL.Path, "/twirp/github.actions.results.api.v1.CacheService/"):
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			http.Error(w, `{"code":"unauthenticated","msg":"bad token"}`, http.StatusUnauthorized)
			return
		}
		f.serveTwirp(w, r, strings.TrimPrefix(r.URL.Path, "/twirp/github.actions.results.api.v1.CacheService/"))
	case strings.HasPrefix(r.URL.Path, "/_apis/artifactcache/"):
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		f.serveV1(w, r, strings.TrimPrefix(r.URL.Path, "/_apis/artifactcache/"))
	default:
		http.NotFound(w, r)
	}
}

// find returns the exact match, else the newest finished entry with a
// restore-key prefix, like the real service.
func (f *fakeService) find(keys []string, version string) *fakeEntry {
	for i, k := range keys {
		var best *fakeEntry
		for _, e := range f.entries {
			if !e.done || e.version != version {
				continue
			}
			if (i == 0 && e.key == k) || (i > 0 && strings.HasPrefix(e.key, k)) {
				if best == nil || e.seq > best.seq {
					best = e
				}
			}
		}
		if best != nil {
			return best
		}
	}
	return nil
}

func (f *fakeService) serveTwirp(w http.ResponseWriter, r *http.Request, method string) {
	var req struct {
		Key         string          `json:"key"`
		Version     string          `json:"version"`
		RestoreKeys []string        `json:"restore_keys"`
		SizeBytes   json.RawMessage `json:"size_bytes"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"code":"malformed","msg":"bad json"}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch method {
	case "CreateCacheEntry":
		if _, ok := f.entries[req.Key]; ok {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"code":"already_exists","msg":"cache entry already exists"}`)
			return
		}
		f.seq++
		e := &fakeEntry{key: req.Key, version: req.Version, blob: "b" + strconv.Itoa(f.seq), seq: f.seq}
		f.entries[req.Key] = e
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "signed_upload_url": f.signed(e.blob)})
	case "FinalizeCacheEntryUpload":
		e := f.entries[req.Key]
		var size string
		if json.Unmarshal(req.SizeBytes, &size) != nil {
			f.t.Errorf("size_bytes %s is not a JSON string", req.SizeBytes)
		}
		if e == nil || strconv.Itoa(len(f.blobs[e.blob])) != size {
			json.NewEncoder(w).Encode(map[string]any{"ok": false, "message": "size mismatch"})
			return
		}
		e.done, e.size = true, int64(len(f.blobs[e.blob]))
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "entry_id": strconv.Itoa(e.seq)})
	case "GetCacheEntryDownloadURL":
		e := f.find(append([]string{req.Key}, req.RestoreKeys...), req.Version)
		if e == nil {
			json.NewEncoder(w).Encode(map[string]any{"ok": false})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "signed_download_url": f.signed(e.blob), "matched_key": e.key})
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"code":"bad_route","msg":"no such method"}`)
	}
}

func (f *fakeService) serveV1(w http.ResponseWriter, r *http.Request, res string) {
	if !strings.Contains(r.Header.Get("Accept"), "api-version=6.0-preview.1") {
		f.t.Errorf("v1 request without api-version Accept header: %q", r.Header.Get("Accept"))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && res == "cache":
		e := f.find(strings.Split(r.URL.Query().Get("keys"), ","), r.URL.Query().Get("version"))
		if e == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"cacheKey": e.key, "scope": "refs/heads/main", "archiveLocation": f.signed(e.blob)})
	case r.Method == http.MethodPost && res == "caches":
		var req v1ReserveRequest
		json.NewDecoder(r.Body).Decode(&req)
		if _, ok := f.entries[req.Key]; ok {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"message":"Cache already exists.","typeKey":"ArtifactCacheItemAlreadyExistsException"}`)
			return
		}
		f.seq++
		f.entries[req.Key] = &fakeEntry{key: req.Key, version: req.Version, blob: "v1-" + strconv.Itoa(f.seq), seq: f.seq}
		json.NewEncoder(w).Encode(map[string]any{"cacheId": f.seq})
	case strings.HasPrefix(res, "caches/"):
		id := strings.TrimPrefix(res, "caches/")
		var e *fakeEntry
		for _, x := range f.entries {
			if strconv.Itoa(x.seq) == id {
				e = x
			}
		}
		if e == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if r.Method == http.MethodPatch {
			var start, end int
			if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "bytes %d-%d/*", &start, &end); err != nil {
				f.t.Errorf("bad Content-Range %q", r.Header.Get("Content-Range"))
			}
			b, _ := io.ReadAll(r.Body)
			if len(b) != end-start+1 {
				f.t.Errorf("chunk %d-%d has %d bytes", start, end, len(b))
			}
			blob := f.blobs[e.blob]
			if len(blob) < end+1 {
				blob = append(blob, make([]byte, end+1-len(blob))...)
			}
			copy(blob[start:], b)
			f.blobs[e.blob] = blob
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var req v1CommitRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req.Size != int64(len(f.blobs[e.blob])) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		e.done, e.size = true, req.Size
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *fakeService) serveBlob(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("sig") != strings.ReplaceAll(strings.ReplaceAll(f.sig, "%2B", "+"), "%3D", "=") {
		w.Header().Set("x-ms-error-code", "AuthenticationFailed")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message></Error>`)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/blob/")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && r.URL.Query().Get("comp") == "block":
		id, err := base64.StdEncoding.DecodeString(r.URL.Query().Get("blockid"))
		if err != nil {
			http.Error(w, "bad block id", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		if f.blocks[name] == nil {
			f.blocks[name] = map[string][]byte{}
		}
		f.blocks[name][string(id)] = b
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodPut && r.URL.Query().Get("comp") == "blocklist":
		var bl struct {
			Latest []string `xml:"Latest"`
		}
		if err := xml.NewDecoder(r.Body).Decode(&bl); err != nil {
			http.Error(w, "bad block list", http.StatusBadRequest)
			return
		}
		var data []byte
		var order []string
		for _, id64 := range bl.Latest {
			id, _ := base64.StdEncoding.DecodeString(id64)
			b, ok := f.blocks[name][string(id)]
			if !ok {
				http.Error(w, "InvalidBlockList", http.StatusBadRequest)
				return
			}
			data = append(data, b...)
			order = append(order, string(id))
		}
		f.blobs[name], f.blockList[name] = data, order
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodPut:
		if r.Header.Get("x-ms-blob-type") != "BlockBlob" {
			http.Error(w, "missing x-ms-blob-type", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		f.blobs[name] = b
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodGet:
		b, ok := f.blobs[name]
		if !ok {
			w.Header().Set("x-ms-error-code", "BlobNotFound")
			w.WriteHeader(http.StatusNotFound)
			return
		}
		http.ServeContent(w, r, name, time.Time{}, strings.NewReader(string(b)))
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (f *fakeService) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// fakeSleeper records waits instead of sleeping.
type fakeSleeper struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *fakeSleeper) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *fakeSleeper) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]time.Duration(nil), s.waits...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// newTestClient returns a client for f with instant, recorded retries and
// no jitter.
func newTestClient(t *testing.T, f *fakeService, v2 bool, mod func(*Config)) (*Client, *fakeSleeper) {
	t.Helper()
	cfg := Config{ResultsURL: f.srv.URL, CacheURL: f.srv.URL + "/", Token: f.token, ServiceV2: v2,
		HTTPClient: f.srv.Client(), BlockSize: 1 << 10, UploadConcurrency: 3}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeSleeper{}
	c.r.sleep = s.sleep
	c.r.jitter = func(d time.Duration) time.Duration { return d }
	return c, s
}
