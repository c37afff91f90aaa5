package ghacache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/google/go-github/v57/github"

	"github.com/bkcache/bkcache/internal/redact"
)

// REST manages a repository's caches through the GitHub REST API
// (go-github). Listing needs actions:read, deleting actions:write.
type REST struct {
	gh    *github.Client
	token string
	r     *retrier
}

// CacheEntry is one cache as the REST API lists it.
type CacheEntry struct {
	ID             int64
	Key            string
	Ref            string
	Version        string
	SizeInBytes    int64
	CreatedAt      time.Time
	LastAccessedAt time.Time
}

// ListOptions filters List. Key is a prefix; Ref is "refs/heads/x",
// "refs/pull/N/merge" or a branch name; Sort is created_at,
// last_accessed_at (the API's default) or size_in_bytes; Direction asc or
// desc (default).
type ListOptions struct {
	Key, Ref, Sort, Direction string
}

// NewREST returns a REST client. apiURL is GITHUB_API_URL as the runner
// sets it: "https://api.github.com" or, on GHES, "https://HOST/api/v3"; it
// is used as given (with a trailing slash), so a server under any path
// prefix works. Empty means api.github.com.
func NewREST(httpClient *http.Client, apiURL, token string) (*REST, error) {
	if token == "" {
		return nil, errors.New("github REST: no token (the github-token input)")
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	base := httpClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	r := newRetrier(Config{HTTPClient: &http.Client{Transport: base}}.withDefaults())
	r.secrets = []string{token}
	hc := *httpClient
	hc.Transport = retryTransport{r}
	gh := github.NewClient(&hc).WithAuthToken(token)
	if apiURL != "" {
		u, err := url.Parse(apiURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("github REST: GITHUB_API_URL %q is not an http(s) URL", redact.URL(apiURL))
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		u.RawQuery, u.Fragment = "", ""
		// Set BaseURL directly: WithEnterpriseURLs would append "api/v3/"
		// to any URL lacking it, which breaks servers on other prefixes.
		gh.BaseURL = u
	}
	return &REST{gh: gh, token: token, r: r}, nil
}

func (r *REST) err(op string, err error) error {
	return redact.Error(fmt.Errorf("%s: %w", op, err), r.token)
}

// List returns every cache matching opts, following pagination.
func (r *REST) List(ctx context.Context, owner, repo string, opts ListOptions) ([]CacheEntry, error) {
	const perPage = 100
	lo := &github.ActionsCacheListOptions{ListOptions: github.ListOptions{PerPage: perPage, Page: 1}}
	if opts.Key != "" {
		lo.Key = &opts.Key
	}
	if opts.Ref != "" {
		lo.Ref = &opts.Ref
	}
	if opts.Sort != "" {
		lo.Sort = &opts.Sort
	}
	if opts.Direction != "" {
		lo.Direction = &opts.Direction
	}
	var out []CacheEntry
	for {
		list, resp, err := r.gh.Actions.ListCaches(ctx, owner, repo, lo)
		if err != nil {
			return nil, r.err("listing caches", err)
		}
		for _, c := range list.ActionsCaches {
			out = append(out, CacheEntry{
				ID: c.GetID(), Key: c.GetKey(), Ref: c.GetRef(), Version: c.GetVersion(),
				SizeInBytes: c.GetSizeInBytes(), CreatedAt: c.GetCreatedAt().Time,
				LastAccessedAt: c.GetLastAccessedAt().Time,
			})
		}
		switch {
		case resp.NextPage != 0:
			lo.Page = resp.NextPage
		case len(list.ActionsCaches) == perPage && len(out) < list.TotalCount:
			lo.Page++ // no Link header: page by total_count
		default:
			return out, nil
		}
	}
}

// DeleteByKey deletes the caches with exactly key, only on ref if ref is
// not empty. A missing cache is not an error.
func (r *REST) DeleteByKey(ctx context.Context, owner, repo, key, ref string) error {
	var refp *string
	if ref != "" {
		refp = &ref
	}
	_, err := r.gh.Actions.DeleteCachesByKey(ctx, owner, repo, key, refp)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return r.err(fmt.Sprintf("deleting cache %q", key), err)
	}
	return nil
}

// DeleteByID deletes one cache. A missing cache is not an error.
func (r *REST) DeleteByID(ctx context.Context, owner, repo string, id int64) error {
	_, err := r.gh.Actions.DeleteCachesByID(ctx, owner, repo, id)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return r.err(fmt.Sprintf("deleting cache %d", id), err)
	}
	return nil
}

func isNotFound(err error) bool {
	var er *github.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound
}

// Usage returns the repository's active cache count and size.
func (r *REST) Usage(ctx context.Context, owner, repo string) (count int, bytes int64, err error) {
	u, _, err := r.gh.Actions.GetCacheUsageForRepo(ctx, owner, repo)
	if err != nil {
		return 0, 0, r.err("getting cache usage", err)
	}
	return u.ActiveCachesCount, u.ActiveCachesSizeInBytes, nil
}

// CleanupRef deletes the caches of ref, e.g. "refs/pull/42/merge" when
// that pull request closes, except those read (or written) since
// keepReadSince: a build of ref may still be running and about to read
// them, and deleting an entry under a build is an eviction it must
// survive. It reports what went and how many entries it kept.
func (r *REST) CleanupRef(ctx context.Context, owner, repo, ref string, keepReadSince time.Time) (deleted int, freed int64, kept int, err error) {
	if ref == "" {
		return 0, 0, 0, errors.New("cleanup: empty ref")
	}
	entries, err := r.List(ctx, owner, repo, ListOptions{Ref: ref})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("cleanup %s: %w", ref, err)
	}
	for _, e := range entries {
		// The ref filter also accepts a bare branch name; never delete
		// another ref's entry if the server matched loosely.
		if !sameRef(e.Ref, ref) {
			continue
		}
		if !e.LastAccessedAt.Before(keepReadSince) {
			kept++
			continue
		}
		if err := r.DeleteByID(ctx, owner, repo, e.ID); err != nil {
			return deleted, freed, kept, fmt.Errorf("cleanup %s: %w", ref, err)
		}
		deleted++
		freed += e.SizeInBytes
	}
	return deleted, freed, kept, nil
}

// PruneSuperseded deletes the older entries of a BuildKit cache index on
// ref, keeping the keep newest (at least one). indexKey is the key without
// the "#n" counter, as IndexKey returns it; entries are ordered by that
// counter, then by creation time.
func (r *REST) PruneSuperseded(ctx context.Context, owner, repo, ref, indexKey string, keep int) (deleted int, freed int64, err error) {
	if indexKey == "" || ref == "" {
		return 0, 0, errors.New("prune: empty index key or ref")
	}
	keep = max(keep, 1)
	entries, err := r.List(ctx, owner, repo, ListOptions{Key: indexKey + "#", Ref: ref})
	if err != nil {
		return 0, 0, fmt.Errorf("prune %s: %w", indexKey, err)
	}
	type idx struct {
		CacheEntry
		n int
	}
	var found []idx
	for _, e := range entries {
		if n, ok := indexCounter(e.Key, indexKey); ok && sameRef(e.Ref, ref) {
			found = append(found, idx{e, n})
		}
	}
	sort.Slice(found, func(i, j int) bool {
		if found[i].n != found[j].n {
			return found[i].n > found[j].n
		}
		return found[i].CreatedAt.After(found[j].CreatedAt)
	})
	for _, e := range found[min(keep, len(found)):] {
		if err := r.DeleteByID(ctx, owner, repo, e.ID); err != nil {
			return deleted, freed, fmt.Errorf("prune %s: %w", indexKey, err)
		}
		deleted++
		freed += e.SizeInBytes
	}
	return deleted, freed, nil
}

// ScopeCache says that a ref holds a BuildKit cache index.
type ScopeCache struct {
	Ref       string
	Key       string // newest index entry, with its "#n"
	CreatedAt time.Time
	// LastAccessedAt is when a build last read that index: every import
	// of the ref reads it, so this is the last job that used its cache.
	LastAccessedAt time.Time
}

// ScopesWithCache reports which of refs hold a BuildKit cache index for gha
// scope name scope (the newest entry of each), in the order of refs.
// Refs without one are left out.
func (r *REST) ScopesWithCache(ctx context.Context, owner, repo, scope string, refs []string) ([]ScopeCache, error) {
	var out []ScopeCache
	for _, ref := range refs {
		key := IndexKey(scope, ref)
		entries, err := r.List(ctx, owner, repo, ListOptions{Key: key + "#", Ref: ref})
		if err != nil {
			return out, fmt.Errorf("scopes with cache: %w", err)
		}
		best, bestN := -1, -1
		for i, e := range entries {
			n, ok := indexCounter(e.Key, key)
			if !ok || !sameRef(e.Ref, ref) {
				continue
			}
			if n > bestN || (n == bestN && e.CreatedAt.After(entries[best].CreatedAt)) {
				best, bestN = i, n
			}
		}
		if best >= 0 {
			e := entries[best]
			out = append(out, ScopeCache{Ref: ref, Key: e.Key, CreatedAt: e.CreatedAt, LastAccessedAt: e.LastAccessedAt})
		}
	}
	return out, nil
}

// sameRef compares refs the way the API's ref filter reads them: a bare
// name is a branch.
func sameRef(a, b string) bool {
	full := func(r string) string {
		if strings.HasPrefix(r, "refs/") {
			return r
		}
		return "refs/heads/" + r
	}
	return full(a) == full(b)
}

// retryTransport gives REST calls the cache client's retries (5xx, 429
// with Retry-After, network errors); go-github itself does not retry.
// Requests with a body that cannot be replayed go through once.
type retryTransport struct{ r *retrier }

func (t retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return t.r.hc.Transport.RoundTrip(req)
	}
	return t.r.do(req.Context(), req.Method+" "+req.URL.Path, func(ctx context.Context) (*http.Request, error) {
		c := req.Clone(ctx)
		if req.GetBody != nil {
			b, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			c.Body = b
		}
		return c, nil
	})
}
