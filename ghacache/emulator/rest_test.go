package emulator

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v57/github"
)

// restClient talks to the emulator through go-github under /api/v3/, the
// way a GHES base URL is used, so absolute-URL bugs show up.
func (h *harness) restClient(token string) *github.Client {
	h.t.Helper()
	c, err := github.NewClient(nil).WithAuthToken(token).WithEnterpriseURLs(h.srv.URL+"/api/v3/", h.srv.URL+"/api/uploads/")
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func cacheKeys(cs []*github.ActionsCache) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.GetRef()+":"+c.GetKey())
	}
	return out
}

func TestRESTList(t *testing.T) {
	h := newHarness(t, Faults{})
	main := h.token("o/r", "refs/heads/main")
	pr := h.token("o/r", "refs/pull/7/merge", "refs/heads/main")
	h.save(main, "idx-1", "v", []byte("1"))
	h.save(main, "idx-2", "v", []byte("22"))
	h.save(pr, "idx-3", "v", []byte("333"))
	h.save(main, "other", "v", []byte("4444"))
	h.twirp(main, "CreateCacheEntry", map[string]any{"key": "idx-unfinalized", "version": "v"})
	ctx := context.Background()
	gh := h.restClient("any-token")

	tests := []struct {
		name string
		opts github.ActionsCacheListOptions
		want []string
	}{
		{"default sort last_accessed_at desc", github.ActionsCacheListOptions{}, []string{"refs/heads/main:other", "refs/pull/7/merge:idx-3", "refs/heads/main:idx-2", "refs/heads/main:idx-1"}},
		{"key prefix", github.ActionsCacheListOptions{Key: github.String("idx-")}, []string{"refs/pull/7/merge:idx-3", "refs/heads/main:idx-2", "refs/heads/main:idx-1"}},
		{"ref full", github.ActionsCacheListOptions{Ref: github.String("refs/pull/7/merge")}, []string{"refs/pull/7/merge:idx-3"}},
		{"ref branch name", github.ActionsCacheListOptions{Ref: github.String("main"), Sort: github.String("created_at"), Direction: github.String("asc")}, []string{"refs/heads/main:idx-1", "refs/heads/main:idx-2", "refs/heads/main:other"}},
		{"size desc", github.ActionsCacheListOptions{Sort: github.String("size_in_bytes")}, []string{"refs/heads/main:other", "refs/pull/7/merge:idx-3", "refs/heads/main:idx-2", "refs/heads/main:idx-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _, err := gh.Actions.ListCaches(ctx, "o", "r", &tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := cacheKeys(l.ActionsCaches); !slices.Equal(got, tt.want) || l.TotalCount != len(tt.want) {
				t.Fatalf("got %v (total %d), want %v", got, l.TotalCount, tt.want)
			}
		})
	}

	t.Run("fields", func(t *testing.T) {
		l, _, err := gh.Actions.ListCaches(ctx, "o", "r", &github.ActionsCacheListOptions{Key: github.String("idx-2")})
		if err != nil || len(l.ActionsCaches) != 1 {
			t.Fatal(l, err)
		}
		c := l.ActionsCaches[0]
		if c.GetID() == 0 || c.GetVersion() != "v" || c.GetSizeInBytes() != 2 || c.GetCreatedAt().IsZero() || c.GetLastAccessedAt().IsZero() {
			t.Fatalf("incomplete entry %+v", c)
		}
		r := h.do("GET", "/repos/o/r/actions/caches?key=idx-2", "x", nil)
		entry := r.body["actions_caches"].([]any)[0].(map[string]any)
		if got := slices.Sorted(mapsKeys(entry)); !slices.Equal(got, []string{"created_at", "id", "key", "last_accessed_at", "ref", "size_in_bytes", "version"}) {
			t.Fatalf("fields %v", got)
		}
		if _, err := time.Parse(time.RFC3339, entry["created_at"].(string)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("pagination", func(t *testing.T) {
		var all []string
		opts := &github.ActionsCacheListOptions{Sort: github.String("created_at"), Direction: github.String("asc"), ListOptions: github.ListOptions{PerPage: 3}}
		pages := 0
		for {
			l, resp, err := gh.Actions.ListCaches(ctx, "o", "r", opts)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if l.TotalCount != 4 {
				t.Fatalf("total_count %d on every page, want 4", l.TotalCount)
			}
			all = append(all, cacheKeys(l.ActionsCaches)...)
			if pages == 1 && (resp.LastPage != 2 || resp.PrevPage != 0) {
				t.Fatalf("page 1 links: next %d last %d", resp.NextPage, resp.LastPage)
			}
			if pages == 2 && (resp.PrevPage != 1 || resp.FirstPage != 1 || resp.NextPage != 0) {
				t.Fatalf("page 2 links: %+v", resp)
			}
			if resp.NextPage == 0 {
				break
			}
			if !strings.Contains(resp.Header.Get("Link"), "/api/v3/repos/o/r/actions/caches?") {
				t.Fatalf("Link not absolute under the prefix: %s", resp.Header.Get("Link"))
			}
			opts.Page = resp.NextPage
		}
		if want := []string{"refs/heads/main:idx-1", "refs/heads/main:idx-2", "refs/pull/7/merge:idx-3", "refs/heads/main:other"}; !slices.Equal(all, want) {
			t.Fatalf("paged %v", all)
		}
	})

	t.Run("validation", func(t *testing.T) {
		for _, q := range []string{"sort=name", "direction=up", "per_page=0", "page=x"} {
			if r := h.do("GET", "/repos/o/r/actions/caches?"+q, "x", nil); r.status != http.StatusUnprocessableEntity {
				t.Fatalf("%s: %d", q, r.status)
			}
		}
	})
}

func TestRESTDeleteAndUsage(t *testing.T) {
	h := newHarness(t, Faults{})
	main := h.token("o/r", "refs/heads/main")
	pr := h.token("o/r", "refs/pull/7/merge", "refs/heads/main")
	h.save(main, "k", "v", []byte("12345"))
	h.save(pr, "k", "v", []byte("123"))
	h.save(pr, "k", "v2", []byte("1"))
	h.save(main, "j", "v", []byte("12"))
	ctx := context.Background()
	gh := h.restClient("t")

	u, _, err := gh.Actions.GetCacheUsageForRepo(ctx, "o", "r")
	if err != nil || u.FullName != "o/r" || u.ActiveCachesCount != 4 || u.ActiveCachesSizeInBytes != 11 {
		t.Fatalf("usage %+v %v", u, err)
	}
	if _, err := gh.Actions.DeleteCachesByKey(ctx, "o", "r", "k", github.String("refs/pull/7/merge")); err != nil {
		t.Fatal(err)
	}
	r := h.do("DELETE", "/repos/o/r/actions/caches?key=k", "t", nil)
	if r.status != 200 || r.body["total_count"] != float64(1) {
		t.Fatalf("delete by key answers the deleted entries: %d %s", r.status, r.raw)
	}
	_, err = gh.Actions.DeleteCachesByKey(ctx, "o", "r", "k", nil)
	var ge *github.ErrorResponse
	if !errors.As(err, &ge) || ge.Response.StatusCode != 404 {
		t.Fatalf("deleting nothing: %v", err)
	}
	l, _, _ := gh.Actions.ListCaches(ctx, "o", "r", nil)
	if got := cacheKeys(l.ActionsCaches); !slices.Equal(got, []string{"refs/heads/main:j"}) {
		t.Fatalf("left %v", got)
	}
	if _, err := gh.Actions.DeleteCachesByID(ctx, "o", "r", l.ActionsCaches[0].GetID()); err != nil {
		t.Fatal(err)
	}
	if _, err := gh.Actions.DeleteCachesByID(ctx, "o", "r", l.ActionsCaches[0].GetID()); err == nil {
		t.Fatal("deleting a missing id succeeded")
	}
	if len(h.blobs.blobs) != 0 {
		t.Fatalf("%d blobs left after deleting every entry", len(h.blobs.blobs))
	}
	u, _, _ = gh.Actions.GetCacheUsageForRepo(ctx, "o", "r")
	if u.ActiveCachesCount != 0 || u.ActiveCachesSizeInBytes != 0 {
		t.Fatalf("usage after delete %+v", u)
	}
}

func TestRESTAuth(t *testing.T) {
	h := newHarness(t, Faults{})
	for _, auth := range []string{"", "Basic abc", "Bearer ", "token "} {
		req, _ := http.NewRequest("GET", h.srv.URL+"/repos/o/r/actions/cache/usage", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%q: %d", auth, res.StatusCode)
		}
	}
	if r := h.do("GET", "/repos/o/r/actions/cache/usage", "", nil, "Authorization", "token abc"); r.status != 200 {
		t.Fatalf("token scheme: %d", r.status)
	}

	emu, err := New(Config{Secret: testSecret, Blobs: NewMemoryStore(), RESTToken: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]int{"s3cret": 200, "other": 401} {
		req, _ := http.NewRequest("GET", "/api/v3/repos/o/r/actions/cache/usage", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := newRecorder()
		emu.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Fatalf("RESTToken set, %q: %d", tok, rec.Code)
		}
	}
}
