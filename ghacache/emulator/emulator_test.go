package emulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

type harness struct {
	t     *testing.T
	emu   *Emulator
	srv   *httptest.Server
	blobs *MemoryStore
	clock *fakeClock
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newHarness(t *testing.T, f Faults) *harness {
	t.Helper()
	blobs := NewMemoryStore()
	bsrv := httptest.NewServer(blobs)
	t.Cleanup(bsrv.Close)
	blobs.URL = bsrv.URL
	clock := &fakeClock{t: time.Now().Truncate(time.Second)}
	emu, err := New(Config{Secret: testSecret, Blobs: blobs, Faults: f, Now: clock.Now, SignedURLTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &harness{t: t, emu: emu, srv: srv, blobs: blobs, clock: clock}
}

func (h *harness) token(repo, write string, read ...string) string {
	h.t.Helper()
	tok, err := MintToken(testSecret, TokenOptions{Repo: repo, Write: write, Read: read, Now: h.clock.Now()})
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (h *harness) do(method, path, token string, body any, hdr ...string) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		dt, _ := json.Marshal(b)
		rd = bytes.NewReader(dt)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (h *harness) twirp(token, method string, body any) response {
	h.t.Helper()
	return h.do("POST", "/twirp/github.actions.results.api.v1.CacheService/"+method, token, body)
}

func put(t *testing.T, u string, data []byte) int {
	t.Helper()
	req, _ := http.NewRequest("PUT", u, bytes.NewReader(data))
	req.Header.Set("x-ms-blob-type", "BlockBlob")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func get(t *testing.T, u string) (int, []byte) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// save runs the v2 create / upload / finalize sequence like @actions/cache
// (proto field names, int64 as a string).
func (h *harness) save(token, key, version string, data []byte) {
	h.t.Helper()
	r := h.twirp(token, "CreateCacheEntry", map[string]any{"key": key, "version": version})
	if r.status != 200 || r.body["ok"] != true {
		h.t.Fatalf("CreateCacheEntry %s: %d %s", key, r.status, r.raw)
	}
	if st := put(h.t, r.body["signed_upload_url"].(string), data); st != http.StatusCreated {
		h.t.Fatalf("upload %s: %d", key, st)
	}
	r = h.twirp(token, "FinalizeCacheEntryUpload", map[string]any{"key": key, "version": version, "size_bytes": jsonInt(len(data))})
	if r.status != 200 || r.body["ok"] != true {
		h.t.Fatalf("FinalizeCacheEntryUpload %s: %d %s", key, r.status, r.raw)
	}
	h.clock.Add(time.Second)
}

func jsonInt(n int) string { return strings.TrimSpace(string(must(json.Marshal(n)))) }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// lookup returns the matched key, or "" on a miss, and checks the blob.
func (h *harness) lookup(token, key string, restore []string, version string) string {
	h.t.Helper()
	r := h.twirp(token, "GetCacheEntryDownloadURL", map[string]any{"key": key, "restore_keys": restore, "version": version})
	if r.status != 200 {
		h.t.Fatalf("GetCacheEntryDownloadURL: %d %s", r.status, r.raw)
	}
	if r.body["ok"] != true {
		if r.body["matched_key"] != "" || r.body["signed_download_url"] != "" {
			h.t.Fatalf("miss should carry empty fields: %s", r.raw)
		}
		return ""
	}
	return r.body["matched_key"].(string)
}

func TestTwirpRoundTripJSON(t *testing.T) {
	h := newHarness(t, Faults{})
	tok := h.token("o/r", "refs/heads/main")

	r := h.twirp(tok, "CreateCacheEntry", map[string]any{"key": "k1", "version": "v1", "metadata": map[string]any{"repository_id": "1"}})
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	// Exactly the proto field names, unpopulated ones included.
	if got := slices.Sorted(mapsKeys(r.body)); !slices.Equal(got, []string{"message", "ok", "signed_upload_url"}) {
		t.Fatalf("CreateCacheEntryResponse fields %v", got)
	}
	payload := []byte("hello cache")
	if st := put(t, r.body["signed_upload_url"].(string), payload); st != 201 {
		t.Fatalf("upload status %d", st)
	}
	// go-actions-cache sends size_bytes as a JSON number.
	r = h.twirp(tok, "FinalizeCacheEntryUpload", map[string]any{"key": "k1", "version": "v1", "size_bytes": len(payload)})
	if r.status != 200 || r.body["ok"] != true {
		t.Fatalf("finalize: %d %s", r.status, r.raw)
	}
	if _, isString := r.body["entry_id"].(string); !isString {
		t.Fatalf("entry_id must be a JSON string (protojson int64): %s", r.raw)
	}
	// lowerCamel input is accepted too.
	r = h.twirp(tok, "GetCacheEntryDownloadURL", map[string]any{"key": "k1", "restoreKeys": []string{"k"}, "version": "v1"})
	if got := slices.Sorted(mapsKeys(r.body)); !slices.Equal(got, []string{"matched_key", "ok", "signed_download_url"}) {
		t.Fatalf("GetCacheEntryDownloadURLResponse fields %v", got)
	}
	if r.body["matched_key"] != "k1" {
		t.Fatalf("matched_key = %v", r.body["matched_key"])
	}
	st, got := get(t, r.body["signed_download_url"].(string))
	if st != 200 || !bytes.Equal(got, payload) {
		t.Fatalf("download: %d %q", st, got)
	}
}

func mapsKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestAlreadyExists(t *testing.T) {
	h := newHarness(t, Faults{})
	tok := h.token("o/r", "refs/heads/main")
	req := map[string]any{"key": "k", "version": "v"}
	if r := h.twirp(tok, "CreateCacheEntry", req); r.status != 200 {
		t.Fatal(r.status)
	}
	for _, name := range []string{"reserved", "finalized"} {
		t.Run(name, func(t *testing.T) {
			if name == "finalized" {
				r := h.twirp(tok, "GetCacheEntryDownloadURL", req)
				if r.body["ok"] == true {
					t.Fatal("unfinalized entry visible")
				}
				h.save(tok, "k2", "v", []byte("x"))
				req = map[string]any{"key": "k2", "version": "v"}
			}
			r := h.twirp(tok, "CreateCacheEntry", req)
			if r.status != http.StatusConflict || r.body["code"] != "already_exists" || r.body["msg"] == "" {
				t.Fatalf("re-create: %d %s", r.status, r.raw)
			}
		})
	}
	// Another version, scope or repository is another identity.
	for _, c := range []struct{ tok, version string }{
		{tok, "v2"},
		{h.token("o/r", "refs/heads/dev"), "v"},
		{h.token("o/other", "refs/heads/main"), "v"},
	} {
		if r := h.twirp(c.tok, "CreateCacheEntry", map[string]any{"key": "k", "version": c.version}); r.status != 200 {
			t.Fatalf("distinct identity refused: %d %s", r.status, r.raw)
		}
	}
}

func TestRestoreKeyOrder(t *testing.T) {
	h := newHarness(t, Faults{})
	main := h.token("o/r", "refs/heads/main")
	h.save(main, "deps-a-1", "v", []byte("a1"))
	h.save(main, "deps-b-1", "v", []byte("b1"))
	h.save(main, "deps-a-2", "v", []byte("a2"))
	h.save(main, "deps-a-3", "other-version", []byte("x"))
	h.save(main, "exact", "v", []byte("e"))
	h.save(main, "exact-newer", "v", []byte("en"))

	tests := []struct {
		name, key string
		restore   []string
		want      string
	}{
		{"exact beats newer prefix", "exact", []string{"exact"}, "exact"},
		{"prefix of key, newest", "deps-a-", nil, "deps-a-2"},
		{"restore keys in order", "nope", []string{"deps-b", "deps-a"}, "deps-b-1"},
		{"newest across prefix", "nope", []string{"deps-"}, "deps-a-2"},
		{"version must match", "deps-a-3", nil, ""},
		{"miss", "zzz", []string{"yyy"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.lookup(main, tt.key, tt.restore, "v"); got != tt.want {
				t.Fatalf("matched %q, want %q", got, tt.want)
			}
		})
	}
}

func TestScopes(t *testing.T) {
	h := newHarness(t, Faults{})
	main := h.token("o/r", "refs/heads/main")
	pr := h.token("o/r", "refs/pull/1/merge", "refs/heads/main")
	h.save(main, "idx", "v", []byte("main"))
	h.save(main, "shared", "v", []byte("main"))

	if got := h.lookup(pr, "idx", nil, "v"); got != "idx" {
		t.Fatalf("PR cannot read main: %q", got)
	}
	// The PR's write lands in its own scope, even for a key main has.
	h.save(pr, "shared", "v", []byte("pr"))
	h.save(pr, "pr-only", "v", []byte("pr"))
	if got := h.lookup(main, "pr-only", nil, "v"); got != "" {
		t.Fatalf("main read a PR entry: %q", got)
	}
	// The PR reads its own scope first.
	r := h.twirp(pr, "GetCacheEntryDownloadURL", map[string]any{"key": "shared", "version": "v"})
	if _, b := get(t, r.body["signed_download_url"].(string)); string(b) != "pr" {
		t.Fatalf("PR read %q, want its own entry", b)
	}
	var refs []string
	for _, e := range h.emu.Entries("o/r") {
		refs = append(refs, e.Scope+":"+e.Key)
	}
	if want := []string{"refs/heads/main:idx", "refs/heads/main:shared", "refs/pull/1/merge:shared", "refs/pull/1/merge:pr-only"}; !slices.Equal(refs, want) {
		t.Fatalf("entries %v, want %v", refs, want)
	}
	// Another repository sees nothing.
	if got := h.lookup(h.token("o/x", "refs/heads/main"), "idx", nil, "v"); got != "" {
		t.Fatalf("cross-repository read: %q", got)
	}

	readOnly := h.token("o/r", "", "refs/heads/main")
	r = h.twirp(readOnly, "CreateCacheEntry", map[string]any{"key": "k", "version": "v"})
	if r.status != 200 || r.body["ok"] != false || !strings.HasPrefix(r.body["message"].(string), "cache write denied:") {
		t.Fatalf("read-only create: %d %s", r.status, r.raw)
	}
	noRead := forge(t, testSecret, jwt.MapClaims{"ac": `[{"Scope":"refs/heads/x","Permission":2}]`, "repository": "o/r", "iss": tokenIssuer, "exp": h.clock.Now().Add(time.Hour).Unix()})
	r = h.twirp(noRead, "GetCacheEntryDownloadURL", map[string]any{"key": "k", "version": "v"})
	if r.status != http.StatusForbidden || r.body["code"] != "permission_denied" || !strings.HasPrefix(r.body["msg"].(string), "cache read denied:") {
		t.Fatalf("no readable scope: %d %s", r.status, r.raw)
	}
}

func forge(t *testing.T, key any, claims jwt.MapClaims, method ...jwt.SigningMethod) string {
	t.Helper()
	m := jwt.SigningMethod(jwt.SigningMethodHS256)
	if len(method) > 0 {
		m = method[0]
	}
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestForgedTokens(t *testing.T) {
	h := newHarness(t, Faults{})
	now := h.clock.Now()
	good := jwt.MapClaims{"ac": `[{"Scope":"refs/heads/main","Permission":3}]`, "repository": "o/r", "iss": tokenIssuer, "exp": now.Add(time.Hour).Unix(), "nbf": now.Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	valid := forge(t, testSecret, good)
	parts := strings.Split(valid, ".")
	tests := map[string]string{
		"no token":       "",
		"other secret":   forge(t, []byte("another secret of enough length!"), good),
		"alg none":       forge(t, jwt.UnsafeAllowNoneSignatureType, good, jwt.SigningMethodNone),
		"expired":        forge(t, testSecret, with("exp", now.Add(-time.Minute).Unix())),
		"no expiry":      forge(t, testSecret, with("exp", nil)),
		"not yet valid":  forge(t, testSecret, with("nbf", now.Add(time.Hour).Unix())),
		"no repository":  forge(t, testSecret, with("repository", nil)),
		"other issuer":   forge(t, testSecret, with("iss", "someone")),
		"tampered claim": parts[0] + "." + strings.TrimRight(b64(`{"ac":"[{\"Scope\":\"refs/heads/main\",\"Permission\":3}]","repository":"o/other","iss":"gha-cache-emulator","exp":9999999999}`), "=") + "." + parts[2],
		"garbage":        "not.a.jwt",
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			r := h.twirp(tok, "GetCacheEntryDownloadURL", map[string]any{"key": "k", "version": "v"})
			if r.status != http.StatusUnauthorized || r.body["code"] != "unauthenticated" {
				t.Fatalf("twirp: %d %s", r.status, r.raw)
			}
			if strings.Contains(string(r.raw), tok) && tok != "" {
				t.Fatal("error echoes the token")
			}
			if r := h.do("GET", "/_apis/artifactcache/cache?keys=k&version=v", tok, nil); r.status != http.StatusUnauthorized {
				t.Fatalf("v1: %d %s", r.status, r.raw)
			}
		})
	}
	if r := h.twirp(valid, "GetCacheEntryDownloadURL", map[string]any{"key": "k", "version": "v"}); r.status != 200 {
		t.Fatalf("valid token refused: %d %s", r.status, r.raw)
	}
}

func TestTwirpErrors(t *testing.T) {
	h := newHarness(t, Faults{})
	tok := h.token("o/r", "refs/heads/main")
	tests := []struct {
		name, method, path, ctype string
		body                      []byte
		status                    int
		code                      string
	}{
		{"unknown method", "POST", "/twirp/github.actions.results.api.v1.CacheService/Nope", "application/json", []byte(`{}`), 404, "bad_route"},
		{"unknown service", "POST", "/twirp/x.Y/CreateCacheEntry", "application/json", []byte(`{}`), 404, "bad_route"},
		{"GET", "GET", "/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry", "application/json", nil, 404, "bad_route"},
		{"protobuf", "POST", "/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry", "application/protobuf", []byte{1}, 404, "bad_route"},
		{"malformed", "POST", "/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry", "application/json", []byte(`{`), 400, "malformed"},
		{"no key", "POST", "/twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry", "application/json", []byte(`{"version":"v"}`), 400, "invalid_argument"},
		{"no version", "POST", "/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL", "application/json", []byte(`{"key":"k"}`), 400, "invalid_argument"},
		{"finalize unknown", "POST", "/twirp/github.actions.results.api.v1.CacheService/FinalizeCacheEntryUpload", "application/json", []byte(`{"key":"k","version":"v","size_bytes":"1"}`), 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(tt.method, tt.path, tok, tt.body, "Content-Type", tt.ctype)
			if r.status != tt.status || r.body["code"] != tt.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tt.status, tt.code)
			}
		})
	}
	t.Run("finalize without upload", func(t *testing.T) {
		h.twirp(tok, "CreateCacheEntry", map[string]any{"key": "up", "version": "v"})
		r := h.twirp(tok, "FinalizeCacheEntryUpload", map[string]any{"key": "up", "version": "v", "size_bytes": "3"})
		if r.status != 200 || r.body["ok"] != false || r.body["message"] == "" {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("finalize size mismatch", func(t *testing.T) {
		r := h.twirp(tok, "CreateCacheEntry", map[string]any{"key": "sz", "version": "v"})
		put(t, r.body["signed_upload_url"].(string), []byte("abc"))
		r = h.twirp(tok, "FinalizeCacheEntryUpload", map[string]any{"key": "sz", "version": "v", "size_bytes": "4"})
		if r.body["ok"] != false {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
}

func TestHealthzAndFaultAdmin(t *testing.T) {
	h := newHarness(t, Faults{})
	if r := h.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	r := h.do("POST", "/_emulator/faults", "", []byte(`{"fail_next":2,"fail_status":503,"expired_urls":true}`))
	if r.status != 200 {
		t.Fatalf("set faults: %d %s", r.status, r.raw)
	}
	if f := h.emu.Faults(); f.FailNext != 2 || f.FailStatus != 503 || !f.ExpiredURLs {
		t.Fatalf("faults %+v", f)
	}
	for _, bad := range []string{`{"fail_nxt":1}`, `{"fail_status":404}`, `{"quota_bytes":-1}`, `nope`} {
		if r := h.do("POST", "/_emulator/faults", "", []byte(bad)); r.status != 400 {
			t.Fatalf("%s accepted: %d", bad, r.status)
		}
	}
	if r := h.do("GET", "/_emulator/faults", "", nil); r.body["fail_next"] != float64(2) {
		t.Fatalf("get faults: %s", r.raw)
	}
}

func TestFault5xxBurst(t *testing.T) {
	h := newHarness(t, Faults{FailNext: 3, FailStatus: 503})
	tok := h.token("o/r", "refs/heads/main")
	req := map[string]any{"key": "k", "version": "v"}
	if r := h.twirp(tok, "GetCacheEntryDownloadURL", req); r.status != 503 || r.body["code"] != "unavailable" {
		t.Fatalf("1: %d %s", r.status, r.raw)
	}
	if r := h.do("GET", "/_apis/artifactcache/cache?keys=k&version=v", tok, nil); r.status != 503 {
		t.Fatalf("2: %d", r.status)
	}
	if r := h.do("GET", "/repos/o/r/actions/cache/usage", "x", nil); r.status != 503 {
		t.Fatalf("3: %d", r.status)
	}
	if r := h.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Fatal("healthz must not fail")
	}
	if r := h.twirp(tok, "GetCacheEntryDownloadURL", req); r.status != 200 {
		t.Fatalf("after burst: %d %s", r.status, r.raw)
	}
}

func TestFaultRateLimit(t *testing.T) {
	h := newHarness(t, Faults{UploadsPerMinute: 2})
	tok := h.token("o/r", "refs/heads/main")
	create := func(key string) response {
		return h.twirp(tok, "CreateCacheEntry", map[string]any{"key": key, "version": "v"})
	}
	create("a")
	h.clock.Add(20 * time.Second)
	create("b")
	r := create("c")
	if r.status != http.StatusTooManyRequests || r.body["code"] != "resource_exhausted" || r.header.Get("Retry-After") != "40" {
		t.Fatalf("third upload: %d Retry-After=%q %s", r.status, r.header.Get("Retry-After"), r.raw)
	}
	// v1 reserve shares the budget.
	if r := h.do("POST", "/_apis/artifactcache/caches", tok, map[string]any{"key": "d", "version": "v"}); r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("v1 reserve: %d %s", r.status, r.raw)
	}
	// Another repository has its own budget.
	if r := h.twirp(h.token("o/x", "refs/heads/main"), "CreateCacheEntry", map[string]any{"key": "c", "version": "v"}); r.status != 200 {
		t.Fatalf("other repo limited: %d", r.status)
	}
	h.clock.Add(41 * time.Second)
	if r := create("c"); r.status != 200 {
		t.Fatalf("after window: %d %s", r.status, r.raw)
	}
}

func TestFaultEvictionLRU(t *testing.T) {
	h := newHarness(t, Faults{QuotaBytes: 10})
	tok := h.token("o/r", "refs/heads/main")
	h.save(tok, "blob-1", "v", []byte("1111"))
	h.save(tok, "blob-2", "v", []byte("2222"))
	// Reading blob-1 makes blob-2 the least recently used.
	r := h.twirp(tok, "GetCacheEntryDownloadURL", map[string]any{"key": "blob-1", "version": "v"})
	h.clock.Add(time.Second)
	h.save(tok, "index", "v", []byte("iiii"))
	var keys []string
	for _, e := range h.emu.Entries("o/r") {
		keys = append(keys, e.Key)
	}
	if !slices.Equal(keys, []string{"blob-1", "index"}) {
		t.Fatalf("after eviction %v", keys)
	}
	if got := h.lookup(tok, "blob-2", nil, "v"); got != "" {
		t.Fatal("evicted entry still found")
	}
	if n := len(h.blobs.blobs); n != 2 {
		t.Fatalf("%d blobs left, want 2 (evicted blob deleted)", n)
	}
	if st, _ := get(t, r.body["signed_download_url"].(string)); st != 200 {
		t.Fatalf("surviving blob: %d", st)
	}
}

func TestFaultExpiredURLs(t *testing.T) {
	h := newHarness(t, Faults{})
	tok := h.token("o/r", "refs/heads/main")
	h.save(tok, "k", "v", []byte("x"))
	if err := h.emu.SetFaults(Faults{ExpiredURLs: true}); err != nil {
		t.Fatal(err)
	}
	r := h.twirp(tok, "GetCacheEntryDownloadURL", map[string]any{"key": "k", "version": "v"})
	if st, _ := get(t, r.body["signed_download_url"].(string)); st != http.StatusForbidden {
		t.Fatalf("expired download URL: %d", st)
	}
	r = h.twirp(tok, "CreateCacheEntry", map[string]any{"key": "k2", "version": "v"})
	if st := put(t, r.body["signed_upload_url"].(string), []byte("x")); st != http.StatusForbidden {
		t.Fatalf("expired upload URL: %d", st)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestFaultEvictAfterLookup: a lookup under the prefix answers, then the
// entry and its blob are gone (the signed URL it handed out 404s); other
// keys are untouched, and a key evicted once stays when uploaded again.
func TestFaultEvictAfterLookup(t *testing.T) {
	h := newHarness(t, Faults{})
	tok := h.token("o/r", "refs/heads/main")
	h.save(tok, "blob-a", "v", []byte("aaaa"))
	h.save(tok, "index", "v", []byte("iiii"))
	if err := h.emu.SetFaults(Faults{EvictAfterLookup: "blob-"}); err != nil {
		t.Fatal(err)
	}
	r := h.twirp(tok, "GetCacheEntryDownloadURL", map[string]any{"key": "blob-a", "version": "v"})
	if r.status != 200 || r.body["ok"] != true {
		t.Fatalf("lookup: %d %s", r.status, r.raw)
	}
	if st, _ := get(t, r.body["signed_download_url"].(string)); st != http.StatusNotFound {
		t.Fatalf("download after the evicting lookup: %d, want 404", st)
	}
	if got := h.lookup(tok, "blob-a", nil, "v"); got != "" {
		t.Fatalf("evicted entry still found: %q", got)
	}
	for range 2 {
		if got := h.lookup(tok, "index", nil, "v"); got != "index" {
			t.Fatalf("index lookup = %q, want it untouched", got)
		}
	}
	h.save(tok, "blob-a", "v", []byte("aaaa"))
	for range 2 {
		if got := h.lookup(tok, "blob-a", nil, "v"); got != "blob-a" {
			t.Fatalf("re-uploaded entry lookup = %q, want it kept", got)
		}
	}
}

func (h *harness) keys(repo string) []string {
	var keys []string
	for _, e := range h.emu.Entries(repo) {
		keys = append(keys, e.Key)
	}
	return keys
}

// TestPolicyEvictEvery: with hourly batches, usage overshoots the quota
// until the next hour's first request, which evicts least recently used
// entries until it fits.
func TestPolicyEvictEvery(t *testing.T) {
	h := newHarness(t, Faults{QuotaBytes: 10, EvictEvery: time.Hour})
	h.clock.t = h.clock.t.Truncate(time.Hour).Add(time.Minute)
	tok := h.token("o/r", "refs/heads/main")
	h.save(tok, "blob-1", "v", []byte("1111"))
	h.save(tok, "blob-2", "v", []byte("2222"))
	h.clock.Add(time.Second)
	h.lookup(tok, "blob-1", nil, "v")
	h.save(tok, "blob-3", "v", []byte("3333"))
	if got := h.keys("o/r"); len(got) != 3 {
		t.Fatalf("within the hour %v, want all three (12 bytes over a quota of 10)", got)
	}
	h.clock.Add(time.Hour)
	h.lookup(tok, "blob-3", nil, "v") // any request after the hour runs the batch
	if got := h.keys("o/r"); !slices.Equal(got, []string{"blob-1", "blob-3"}) {
		t.Fatalf("after the batch %v, want blob-2 (least recently used) gone", got)
	}
	if n := len(h.blobs.blobs); n != 2 {
		t.Fatalf("%d blobs left, want 2", n)
	}
}

// TestPolicyExpireUnused: an entry not read for the period is gone
// whatever the quota; one read in time stays.
func TestPolicyExpireUnused(t *testing.T) {
	h := newHarness(t, Faults{ExpireUnused: 7 * 24 * time.Hour})
	tok := h.token("o/r", "refs/heads/main")
	h.save(tok, "old", "v", []byte("1"))
	h.save(tok, "read", "v", []byte("2"))
	h.clock.Add(6 * 24 * time.Hour)
	tok = h.token("o/r", "refs/heads/main")
	if got := h.lookup(tok, "read", nil, "v"); got != "read" {
		t.Fatalf("lookup after 6 days = %q", got)
	}
	h.clock.Add(24*time.Hour + time.Second)
	h.emu.Housekeep(context.Background())
	if got := h.keys("o/r"); !slices.Equal(got, []string{"read"}) {
		t.Fatalf("after 7 days %v, want only the entry read a day ago", got)
	}
	tok = h.token("o/r", "refs/heads/main")
	if got := h.lookup(tok, "old", nil, "v"); got != "" {
		t.Fatalf("expired entry still found: %q", got)
	}
}

// TestPolicyJSON: the policies switch on through /_emulator/faults by
// their JSON names, and negative periods are refused.
func TestPolicyJSON(t *testing.T) {
	h := newHarness(t, Faults{})
	r := h.do("POST", "/_emulator/faults", "", []byte(`{"quota_bytes":10,"evict_every_ns":3600000000000,"expire_unused_ns":604800000000000}`))
	if r.status != 200 {
		t.Fatalf("POST faults: %d %s", r.status, r.raw)
	}
	if f := h.emu.Faults(); f.EvictEvery != time.Hour || f.ExpireUnused != 7*24*time.Hour {
		t.Errorf("faults = %+v", f)
	}
	if err := h.emu.SetFaults(Faults{ExpireUnused: -time.Second}); err == nil {
		t.Error("a negative expiry was accepted")
	}
}
