package ghacache

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeREST serves the cache management endpoints under /api/v3/, like
// GHES and go-github's own tests, so a client that builds absolute paths
// fails here.
type fakeREST struct {
	mu      sync.Mutex
	caches  []restCache
	nextID  int64
	link    bool // send Link headers (GitHub does); else rely on total_count
	token   string
	queries []string
}

type restCache struct {
	ID             int64     `json:"id"`
	Ref            string    `json:"ref"`
	Key            string    `json:"key"`
	Version        string    `json:"version"`
	LastAccessedAt time.Time `json:"last_accessed_at"`
	CreatedAt      time.Time `json:"created_at"`
	SizeInBytes    int64     `json:"size_in_bytes"`
}

func (f *fakeREST) add(key, ref string, size int64) {
	f.nextID++
	t := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(f.nextID) * time.Minute)
	f.caches = append(f.caches, restCache{ID: f.nextID, Ref: ref, Key: key, Version: "v", CreatedAt: t, LastAccessedAt: t, SizeInBytes: size})
}

func (f *fakeREST) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"Bad credentials"}`)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, r.Method+" "+r.URL.RequestURI())
	const prefix = "/api/v3/repos/o/r/actions/"
	path, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found"}`)
		return
	}
	q := r.URL.Query()
	switch {
	case path == "cache/usage" && r.Method == http.MethodGet:
		var size int64
		for _, c := range f.caches {
			size += c.SizeInBytes
		}
		json.NewEncoder(w).Encode(map[string]any{"full_name": "o/r", "active_caches_size_in_bytes": size, "active_caches_count": len(f.caches)})
	case path == "caches" && r.Method == http.MethodGet:
		var match []restCache
		for _, c := range f.caches {
			if (q.Get("key") == "" || strings.HasPrefix(c.Key, q.Get("key"))) && (q.Get("ref") == "" || c.Ref == q.Get("ref")) {
				match = append(match, c)
			}
		}
		sort.Slice(match, func(i, j int) bool { return match[i].CreatedAt.After(match[j].CreatedAt) })
		per, _ := strconv.Atoi(q.Get("per_page"))
		page, _ := strconv.Atoi(q.Get("page"))
		if per <= 0 {
			per = 30
		}
		page = max(page, 1)
		lo, hi := min((page-1)*per, len(match)), min(page*per, len(match))
		if f.link && hi < len(match) {
			u := *r.URL
			q.Set("page", strconv.Itoa(page+1))
			u.RawQuery = q.Encode()
			w.Header().Set("Link", fmt.Sprintf(`<http://%s%s>; rel="next"`, r.Host, u.RequestURI()))
		}
		json.NewEncoder(w).Encode(map[string]any{"total_count": len(match), "actions_caches": match[lo:hi]})
	case path == "caches" && r.Method == http.MethodDelete:
		var kept, gone []restCache
		for _, c := range f.caches {
			if c.Key == q.Get("key") && (q.Get("ref") == "" || c.Ref == q.Get("ref")) {
				gone = append(gone, c)
			} else {
				kept = append(kept, c)
			}
		}
		if len(gone) == 0 {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"Not Found"}`)
			return
		}
		f.caches = kept
		json.NewEncoder(w).Encode(map[string]any{"total_count": len(gone), "actions_caches": gone})
	case strings.HasPrefix(path, "caches/") && r.Method == http.MethodDelete:
		id, _ := strconv.ParseInt(strings.TrimPrefix(path, "caches/"), 10, 64)
		for i, c := range f.caches {
			if c.ID == id {
				f.caches = append(f.caches[:i], f.caches[i+1:]...)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found"}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found"}`)
	}
}

func (f *fakeREST) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.caches {
		out = append(out, c.Ref+" "+c.Key)
	}
	sort.Strings(out)
	return out
}

// TestRESTCleanupRefKeepsRecentlyRead: a closed pull request's cleanup
// keeps the entries read within the grace, which a build still running
// may be about to read.
func TestRESTCleanupRefKeepsRecentlyRead(t *testing.T) {
	ctx := context.Background()
	const pr = "refs/pull/42/merge"
	// add stamps entry n with 2030-01-01 00:0n.
	at := func(min int) time.Time { return time.Date(2030, 1, 1, 0, min, 0, 0, time.UTC) }
	tests := []struct {
		name          string
		keepReadSince time.Time
		deleted, kept int
		left          []string
	}{
		{"nothing read recently", at(10), 3, 0, nil},
		{"the later two read recently", at(2), 1, 2, []string{pr + " buildkit-blob-1-sha256:2", pr + " index-buildkit-1-aaaa#1"}},
		{"all read recently", at(1), 0, 3, []string{pr + " buildkit-blob-1-sha256:1", pr + " buildkit-blob-1-sha256:2", pr + " index-buildkit-1-aaaa#1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, r := newFakeREST(t, true)
			f.add("buildkit-blob-1-sha256:1", pr, 10)
			f.add("buildkit-blob-1-sha256:2", pr, 10)
			f.add("index-buildkit-1-aaaa#1", pr, 1)
			deleted, _, kept, err := r.CleanupRef(ctx, "o", "r", pr, tt.keepReadSince)
			if err != nil || deleted != tt.deleted || kept != tt.kept {
				t.Fatalf("CleanupRef = %d deleted, %d kept, %v; want %d, %d", deleted, kept, err, tt.deleted, tt.kept)
			}
			if got := f.keys(); fmt.Sprint(got) != fmt.Sprint(tt.left) {
				t.Errorf("left %q, want %q", got, tt.left)
			}
		})
	}
}

func newFakeREST(t *testing.T, link bool) (*fakeREST, *REST) {
	f := &fakeREST{token: "ghp_resttokensecret", link: link}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	r, err := NewREST(srv.Client(), srv.URL+"/api/v3", f.token)
	if err != nil {
		t.Fatal(err)
	}
	return f, r
}

func TestRESTListPaginates(t *testing.T) {
	for _, link := range []bool{true, false} {
		t.Run(fmt.Sprintf("link=%v", link), func(t *testing.T) {
			f, r := newFakeREST(t, link)
			for i := range 250 {
				f.add(fmt.Sprintf("buildkit-blob-1-sha256:%03d", i), "refs/heads/main", 10)
			}
			f.add("other", "refs/heads/main", 1)
			got, err := r.List(context.Background(), "o", "r", ListOptions{Key: "buildkit-blob-1-", Ref: "refs/heads/main", Sort: "created_at", Direction: "asc"})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 250 {
				t.Fatalf("List returned %d entries, want 250", len(got))
			}
			seen := map[int64]bool{}
			for _, e := range got {
				if seen[e.ID] {
					t.Fatalf("entry %d listed twice", e.ID)
				}
				seen[e.ID] = true
			}
			q := f.queries[0]
			for _, want := range []string{"/api/v3/repos/o/r/actions/caches?", "key=buildkit-blob-1-", "ref=refs%2Fheads%2Fmain", "sort=created_at", "direction=asc", "per_page=100"} {
				if !strings.Contains(q, want) {
					t.Errorf("query %q lacks %q", q, want)
				}
			}
			if len(f.queries) != 3 {
				t.Errorf("made %d requests, want 3 pages", len(f.queries))
			}
		})
	}
}

func TestRESTCleanupRefAndUsage(t *testing.T) {
	f, r := newFakeREST(t, true)
	ctx := context.Background()
	f.add("index-buildkit-1-aaaa#1", "refs/pull/42/merge", 100)
	f.add("buildkit-blob-1-sha256:1", "refs/pull/42/merge", 1000)
	f.add("buildkit-blob-1-sha256:1", "refs/heads/main", 1000)
	f.add("index-buildkit-1-bbbb#1", "refs/heads/main", 100)
	f.add("x", "refs/pull/420/merge", 5)

	n, size, err := r.Usage(ctx, "o", "r")
	if err != nil || n != 5 || size != 2205 {
		t.Fatalf("Usage = %d, %d, %v; want 5, 2205", n, size, err)
	}
	never := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC) // nothing was read since
	deleted, freed, _, err := r.CleanupRef(ctx, "o", "r", "refs/pull/42/merge", never)
	if err != nil || deleted != 2 || freed != 1100 {
		t.Fatalf("CleanupRef = %d, %d, %v; want 2, 1100", deleted, freed, err)
	}
	want := []string{"refs/heads/main buildkit-blob-1-sha256:1", "refs/heads/main index-buildkit-1-bbbb#1", "refs/pull/420/merge x"}
	if got := f.keys(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("left %q, want %q", got, want)
	}
	// Again: nothing left, no error.
	if d, _, _, err := r.CleanupRef(ctx, "o", "r", "refs/pull/42/merge", never); err != nil || d != 0 {
		t.Errorf("second CleanupRef = %d, %v", d, err)
	}
	if err := r.DeleteByKey(ctx, "o", "r", "missing", "refs/heads/main"); err != nil {
		t.Errorf("DeleteByKey of a missing key = %v, want nil", err)
	}
	if err := r.DeleteByKey(ctx, "o", "r", "buildkit-blob-1-sha256:1", "refs/heads/main"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteByID(ctx, "o", "r", 999); err != nil {
		t.Errorf("DeleteByID of a missing id = %v, want nil", err)
	}
}

func TestRESTPruneAndScopes(t *testing.T) {
	f, r := newFakeREST(t, true)
	ctx := context.Background()
	main, pr := "refs/heads/main", "refs/pull/7/merge"
	idx := IndexKey("buildkit", main)
	for i := 1; i <= 12; i++ { // counters past 9 catch a lexical sort
		f.add(fmt.Sprintf("%s#%d", idx, i), main, 10)
	}
	f.add(idx+"-sig#1", main, 10)                 // signed namespace: not ours
	f.add(IndexKey("other", main)+"#1", main, 10) // another scope
	f.add(IndexKey("buildkit", pr)+"#1", pr, 10)  // another ref
	f.add(idx+"#3", pr, 10)                       // same key on another ref

	deleted, freed, err := r.PruneSuperseded(ctx, "o", "r", main, idx, 2)
	if err != nil || deleted != 10 || freed != 100 {
		t.Fatalf("PruneSuperseded = %d, %d, %v; want 10, 100", deleted, freed, err)
	}
	var left []string
	for _, k := range f.keys() {
		if strings.HasPrefix(k, main+" "+idx+"#") {
			left = append(left, strings.TrimPrefix(k, main+" "))
		}
	}
	if want := []string{idx + "#11", idx + "#12"}; fmt.Sprint(left) != fmt.Sprint(want) {
		t.Errorf("kept %q, want %q", left, want)
	}
	if len(f.keys()) != 6 {
		t.Errorf("other entries touched: %q", f.keys())
	}

	got, err := r.ScopesWithCache(ctx, "o", "r", "buildkit", []string{pr, "refs/heads/dev", main})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Ref != pr || got[1].Ref != main || got[1].Key != idx+"#12" {
		t.Errorf("ScopesWithCache = %+v", got)
	}
}

func TestRESTErrors(t *testing.T) {
	f, _ := newFakeREST(t, true)
	srv := httptest.NewServer(f)
	defer srv.Close()
	r, err := NewREST(srv.Client(), srv.URL+"/api/v3/", "wrong-token-value")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.Usage(context.Background(), "o", "r")
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong-token-value") {
		t.Errorf("Usage with a bad token = %v", err)
	}
	if _, err := NewREST(nil, "ftp://x", "t"); err == nil {
		t.Error("NewREST accepted ftp://")
	}
	if _, err := NewREST(nil, "", ""); err == nil {
		t.Error("NewREST accepted an empty token")
	}
	def, err := NewREST(nil, "", "t")
	if err != nil || def.gh.BaseURL.String() != "https://api.github.com/" {
		t.Errorf("default base URL = %v, %v", def.gh.BaseURL, err)
	}
}

func TestRESTRetries(t *testing.T) {
	f := &fakeREST{token: "ghp_resttokensecret"}
	f.add("k", "refs/heads/main", 3)
	fails := 2
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fails > 0 {
			fails--
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		f.ServeHTTP(w, r)
	}))
	defer srv.Close()
	r, err := NewREST(srv.Client(), srv.URL+"/api/v3", f.token)
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	r.r.sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	n, size, err := r.Usage(context.Background(), "o", "r")
	if err != nil || n != 1 || size != 3 {
		t.Fatalf("Usage = %d, %d, %v", n, size, err)
	}
	if fmt.Sprint(waits) != "[3s 3s]" {
		t.Errorf("waits = %v, want [3s 3s]", waits)
	}
}
