package emulator

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The REST management API, as documented at
// https://docs.github.com/rest/actions/cache and modelled by go-github
// v57's ActionsCache, ActionsCacheList and ActionsCacheUsage.

type restCache struct {
	ID             int64  `json:"id"`
	Ref            string `json:"ref"`
	Key            string `json:"key"`
	Version        string `json:"version"`
	LastAccessedAt string `json:"last_accessed_at"`
	CreatedAt      string `json:"created_at"`
	SizeInBytes    int64  `json:"size_in_bytes"`
}

type restCacheList struct {
	TotalCount    int         `json:"total_count"`
	ActionsCaches []restCache `json:"actions_caches"`
}

type restUsage struct {
	FullName                string `json:"full_name"`
	ActiveCachesSizeInBytes int64  `json:"active_caches_size_in_bytes"`
	ActiveCachesCount       int    `json:"active_caches_count"`
}

// restTime is the timestamp layout of the REST docs' examples.
const restTime = "2006-01-02T15:04:05.000Z"

const docsURL = "https://docs.github.com/rest/actions/cache"

func toRest(en *Entry) restCache {
	return restCache{
		ID: en.ID, Ref: en.Scope, Key: en.Key, Version: en.Version,
		LastAccessedAt: en.LastAccessedAt.UTC().Format(restTime),
		CreatedAt:      en.CreatedAt.UTC().Format(restTime),
		SizeInBytes:    en.Size,
	}
}

func restError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg, "documentation_url": docsURL, "status": strconv.Itoa(status)})
}

// restAuth accepts `Authorization: Bearer X` or `token X`; X must equal
// Config.RESTToken when that is set, else be non-empty.
func (e *Emulator) restAuth(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "token ")
	}
	tok = strings.TrimSpace(tok)
	switch {
	case !ok || tok == "":
		restError(w, http.StatusUnauthorized, "Requires authentication")
		return false
	case e.cfg.RESTToken != "" && tok != e.cfg.RESTToken:
		restError(w, http.StatusUnauthorized, "Bad credentials")
		return false
	}
	return true
}

func repoOf(r *http.Request) string { return r.PathValue("owner") + "/" + r.PathValue("repo") }

// normalizeRef accepts refs/heads/x, refs/pull/n/merge, or a bare branch.
func normalizeRef(ref string) string {
	if ref == "" || strings.HasPrefix(ref, "refs/") {
		return ref
	}
	return "refs/heads/" + ref
}

func (e *Emulator) restList(w http.ResponseWriter, r *http.Request) {
	if !e.restAuth(w, r) {
		return
	}
	q := r.URL.Query()
	sortBy := cmp.Or(q.Get("sort"), "last_accessed_at")
	dir := cmp.Or(q.Get("direction"), "desc")
	if !slices.Contains([]string{"created_at", "last_accessed_at", "size_in_bytes"}, sortBy) {
		restError(w, http.StatusUnprocessableEntity, fmt.Sprintf("Validation Failed: sort %q is not one of created_at, last_accessed_at, size_in_bytes", sortBy))
		return
	}
	if dir != "asc" && dir != "desc" {
		restError(w, http.StatusUnprocessableEntity, fmt.Sprintf("Validation Failed: direction %q is not one of asc, desc", dir))
		return
	}
	perPage, ok1 := intParam(q.Get("per_page"), 30)
	page, ok2 := intParam(q.Get("page"), 1)
	if !ok1 || !ok2 {
		restError(w, http.StatusUnprocessableEntity, "Validation Failed: per_page and page must be positive integers")
		return
	}
	perPage = min(perPage, 100)
	key, ref := q.Get("key"), normalizeRef(q.Get("ref"))

	e.mu.Lock()
	var all []restCache
	for _, en := range e.ix.list(repoOf(r)) {
		if strings.HasPrefix(en.Key, key) && (ref == "" || en.Scope == ref) {
			all = append(all, toRest(en))
		}
	}
	e.mu.Unlock()

	slices.SortStableFunc(all, func(a, b restCache) int {
		var c int
		switch sortBy {
		case "created_at":
			c = strings.Compare(a.CreatedAt, b.CreatedAt)
		case "last_accessed_at":
			c = strings.Compare(a.LastAccessedAt, b.LastAccessedAt)
		default:
			c = cmp.Compare(a.SizeInBytes, b.SizeInBytes)
		}
		c = cmp.Or(c, cmp.Compare(a.ID, b.ID))
		if dir == "desc" {
			c = -c
		}
		return c
	})
	lastPage := max(1, (len(all)+perPage-1)/perPage)
	start := min((page-1)*perPage, len(all))
	end := min(start+perPage, len(all))
	if link := linkHeader(r, page, perPage, lastPage); link != "" {
		w.Header().Set("Link", link)
	}
	writeJSON(w, http.StatusOK, restCacheList{TotalCount: len(all), ActionsCaches: append([]restCache{}, all[start:end]...)})
}

func intParam(s string, def int) (int, bool) {
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

// linkHeader builds GitHub's pagination Link header (prev, next, last,
// first), with absolute URLs as GitHub sends them.
func linkHeader(r *http.Request, page, perPage, lastPage int) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	link := func(p int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(perPage))
		u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	var parts []string
	if page > 1 {
		parts = append(parts, link(page-1, "prev"))
	}
	if page < lastPage {
		parts = append(parts, link(page+1, "next"), link(lastPage, "last"))
	}
	if page > 1 {
		parts = append(parts, link(1, "first"))
	}
	return strings.Join(parts, ", ")
}

// restDeleteByKey deletes every entry with exactly this key (and ref, if
// given) and answers with the deleted entries, or 404 when none matched.
func (e *Emulator) restDeleteByKey(w http.ResponseWriter, r *http.Request) {
	if !e.restAuth(w, r) {
		return
	}
	key, ref := r.URL.Query().Get("key"), normalizeRef(r.URL.Query().Get("ref"))
	if key == "" {
		restError(w, http.StatusUnprocessableEntity, "Validation Failed: key is required")
		return
	}
	e.mu.Lock()
	var victims []*Entry
	var out []restCache
	for _, en := range e.ix.list(repoOf(r)) {
		if en.Key == key && (ref == "" || en.Scope == ref) {
			victims = append(victims, en)
			out = append(out, toRest(en))
		}
	}
	blobs := e.ix.remove(victims...)
	e.mu.Unlock()
	if len(out) == 0 {
		restError(w, http.StatusNotFound, "Not Found")
		return
	}
	e.deleteBlobs(r, blobs)
	writeJSON(w, http.StatusOK, restCacheList{TotalCount: len(out), ActionsCaches: out})
}

func (e *Emulator) restDeleteByID(w http.ResponseWriter, r *http.Request) {
	if !e.restAuth(w, r) {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	e.mu.Lock()
	en, ok := e.ix.entries[id]
	ok = ok && err == nil && en.Finalized && sameRepo(en.Repo, repoOf(r))
	var blobs []string
	if ok {
		blobs = e.ix.remove(en)
	}
	e.mu.Unlock()
	if !ok {
		restError(w, http.StatusNotFound, "Not Found")
		return
	}
	e.deleteBlobs(r, blobs)
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) restUsage(w http.ResponseWriter, r *http.Request) {
	if !e.restAuth(w, r) {
		return
	}
	u := restUsage{FullName: repoOf(r)}
	e.mu.Lock()
	for _, en := range e.ix.list(repoOf(r)) {
		u.ActiveCachesSizeInBytes += en.Size
		u.ActiveCachesCount++
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, u)
}
