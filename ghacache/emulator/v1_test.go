package emulator

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// v1Save follows @actions/cache's saveCacheV1: reserve, PATCH chunks
// (here out of order), commit with the size.
func (h *harness) v1Save(token, key, version string, data []byte, chunk int) int64 {
	h.t.Helper()
	r := h.do("POST", "/opaque-id/_apis/artifactcache/caches", token, map[string]any{"key": key, "version": version, "cacheSize": len(data)})
	if r.status != http.StatusCreated {
		h.t.Fatalf("reserve: %d %s", r.status, r.raw)
	}
	id := int64(r.body["cacheId"].(float64))
	var starts []int
	for s := 0; s < len(data); s += chunk {
		starts = append([]int{s}, starts...)
	}
	for _, s := range starts {
		e := min(s+chunk, len(data)) - 1
		r := h.do("PATCH", fmt.Sprintf("/opaque-id/_apis/artifactcache/caches/%d", id), token, data[s:e+1],
			"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("bytes %d-%d/*", s, e))
		if r.status != http.StatusNoContent {
			h.t.Fatalf("upload chunk: %d %s", r.status, r.raw)
		}
	}
	r = h.do("POST", fmt.Sprintf("/opaque-id/_apis/artifactcache/caches/%d", id), token, map[string]any{"size": len(data)})
	if r.status != http.StatusNoContent {
		h.t.Fatalf("commit: %d %s", r.status, r.raw)
	}
	h.clock.Add(1e9)
	return id
}

func TestV1(t *testing.T) {
	h := newHarness(t, Faults{})
	main := h.token("o/r", "refs/heads/main")
	pr := h.token("o/r", "refs/pull/2/merge", "refs/heads/main")
	data := []byte(strings.Repeat("0123456789", 10))
	h.v1Save(main, "npm-abc", "ver", data, 33)

	t.Run("lookup", func(t *testing.T) {
		r := h.do("GET", "/opaque-id/_apis/artifactcache/cache?keys=npm-zzz,npm-&version=ver", pr, nil)
		if r.status != 200 || r.body["cacheKey"] != "npm-abc" || r.body["scope"] != "refs/heads/main" || r.body["cacheVersion"] != "ver" || r.body["creationTime"] == "" {
			t.Fatalf("lookup: %d %s", r.status, r.raw)
		}
		st, got := get(t, r.body["archiveLocation"].(string))
		if st != 200 || string(got) != string(data) {
			t.Fatalf("archive: %d %d bytes", st, len(got))
		}
	})
	t.Run("miss is 204", func(t *testing.T) {
		if r := h.do("GET", "/_apis/artifactcache/cache?keys=npm-abc&version=other", main, nil); r.status != http.StatusNoContent {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("already exists", func(t *testing.T) {
		r := h.do("POST", "/_apis/artifactcache/caches", main, map[string]any{"key": "npm-abc", "version": "ver"})
		if r.status != http.StatusConflict || r.body["typeKey"] != "ArtifactCacheItemAlreadyExistsException" || !strings.Contains(r.body["message"].(string), "already exists") {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("v2 sees v1 entries", func(t *testing.T) {
		if got := h.lookup(pr, "npm-abc", nil, "ver"); got != "npm-abc" {
			t.Fatalf("%q", got)
		}
	})
	t.Run("commit with a gap", func(t *testing.T) {
		r := h.do("POST", "/_apis/artifactcache/caches", main, map[string]any{"key": "gap", "version": "ver"})
		id := int64(r.body["cacheId"].(float64))
		h.do("PATCH", fmt.Sprintf("/_apis/artifactcache/caches/%d", id), main, []byte("abc"), "Content-Range", "bytes 3-5/*")
		if r := h.do("POST", fmt.Sprintf("/_apis/artifactcache/caches/%d", id), main, map[string]any{"size": 6}); r.status != 400 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if r := h.do("PATCH", fmt.Sprintf("/_apis/artifactcache/caches/%d", id), pr, []byte("abc"), "Content-Range", "bytes 0-2/*"); r.status != 404 {
			t.Fatalf("other scope wrote the entry: %d", r.status)
		}
		if r := h.do("PATCH", fmt.Sprintf("/_apis/artifactcache/caches/%d", id), main, []byte("abc"), "Content-Range", "bytes 0-3/*"); r.status != 400 {
			t.Fatalf("short chunk accepted: %d", r.status)
		}
	})
	t.Run("read-only token", func(t *testing.T) {
		ro := h.token("o/r", "", "refs/heads/main")
		r := h.do("POST", "/_apis/artifactcache/caches", ro, map[string]any{"key": "x", "version": "ver"})
		if r.status != 403 || !strings.HasPrefix(r.body["message"].(string), "cache write denied:") {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("list", func(t *testing.T) {
		r := h.do("GET", "/_apis/artifactcache/caches?key=npm-abc", main, nil)
		if r.body["totalCount"] != float64(1) {
			t.Fatalf("%s", r.raw)
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/*", "bytes 5-5/10", "bytes -1-2/*", "bytes 9-1/*", "", "bytes 0-/*", "bytes 1-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, b, err := parseContentRange(s)
		if err == nil && (a < 0 || b < a) {
			t.Fatalf("%q parsed to %d-%d", s, a, b)
		}
	})
}

func FuzzParseByteRange(f *testing.F) {
	for _, s := range []string{"bytes=0-", "bytes=5-9", "bytes=9-5", "bytes=100-", "bytes=-5", "x"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, s string, size int64) {
		a, b, ok := parseByteRange(s, size)
		if ok && (a < 0 || b < a || b >= size) {
			t.Fatalf("%q/%d parsed to %d-%d", s, size, a, b)
		}
	})
}
