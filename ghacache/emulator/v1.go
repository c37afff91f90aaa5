package emulator

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The legacy cache API (v1), still used by GHES: paths under
// {ACTIONS_CACHE_URL}_apis/artifactcache/. JSON field names are those of
// @actions/cache's contracts.d.ts (cacheKey, scope, cacheVersion,
// creationTime, archiveLocation; cacheId; size) and go-actions-cache.

type v1Entry struct {
	CacheKey        string `json:"cacheKey"`
	Scope           string `json:"scope"`
	CacheVersion    string `json:"cacheVersion"`
	CreationTime    string `json:"creationTime"`
	ArchiveLocation string `json:"archiveLocation,omitempty"`
}

// maxV1Size is the per-entry cap the toolkit also checks (10 GB).
const maxV1Size = 10 << 30

func (e *Emulator) serveV1(w http.ResponseWriter, r *http.Request, rest string) {
	id, err := e.authenticate(r)
	if err != nil {
		v1Error(w, http.StatusUnauthorized, "", err.Error())
		return
	}
	switch {
	case rest == "cache" && r.Method == http.MethodGet:
		e.v1Lookup(w, r, id)
	case rest == "caches" && r.Method == http.MethodGet:
		e.v1List(w, r, id)
	case rest == "caches" && r.Method == http.MethodPost:
		e.v1Reserve(w, r, id)
	case strings.HasPrefix(rest, "caches/") && (r.Method == http.MethodPatch || r.Method == http.MethodPost):
		cid, err := strconv.ParseInt(strings.TrimPrefix(rest, "caches/"), 10, 64)
		if err != nil {
			v1Error(w, http.StatusBadRequest, "", "invalid cache id")
			return
		}
		if r.Method == http.MethodPatch {
			e.v1Upload(w, r, id, cid)
		} else {
			e.v1Commit(w, r, id, cid)
		}
	default:
		v1Error(w, http.StatusNotFound, "", "no such API: "+r.Method+" "+rest)
	}
}

// v1Error writes the Azure DevOps style error body that GitHub's v1
// service returned and go-actions-cache parses (message, typeKey).
func v1Error(w http.ResponseWriter, status int, typeKey, msg string) {
	typeName := ""
	if typeKey != "" {
		typeName = "Microsoft.Azure.DevOps.PipelineCache.WebApi." + typeKey + ", Microsoft.Azure.DevOps.PipelineCache.WebApi"
	}
	writeJSON(w, status, map[string]any{
		"$id": "1", "innerException": nil, "message": msg,
		"typeName": typeName, "typeKey": typeKey, "errorCode": 0, "eventId": 3000,
	})
}

func (e *Emulator) v1Lookup(w http.ResponseWriter, r *http.Request, id Identity) {
	q := r.URL.Query()
	var keys []string
	for k := range strings.SplitSeq(q.Get("keys"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	version := q.Get("version")
	if len(keys) == 0 || version == "" {
		v1Error(w, http.StatusBadRequest, "ArgumentException", "keys and version are required")
		return
	}
	scopes := id.Readable()
	if len(scopes) == 0 {
		v1Error(w, http.StatusForbidden, "", "cache read denied: the runtime token has no readable cache scope")
		return
	}
	e.mu.Lock()
	en := e.ix.match(id.Repo, scopes, keys[0], keys[1:], version)
	var out v1Entry
	var blob string
	var evicted []string
	if en != nil {
		en.LastAccessedAt = e.cfg.Now()
		out = toV1Entry(en)
		blob = en.Blob
		evicted = e.evictAfterLookup(en)
	}
	expired := e.faults.ExpiredURLs
	e.mu.Unlock()
	if en == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	e.deleteBlobs(r, evicted)
	u, err := e.signedURL(blob, AccessRead, expired)
	if err != nil {
		v1Error(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	out.ArchiveLocation = u
	writeJSON(w, http.StatusOK, out)
}

func toV1Entry(en *Entry) v1Entry {
	return v1Entry{CacheKey: en.Key, Scope: en.Scope, CacheVersion: en.Version, CreationTime: en.CreatedAt.UTC().Format(time.RFC3339Nano)}
}

// v1List answers the toolkit's diagnostic listing of entries with a key,
// in any version or scope.
func (e *Emulator) v1List(w http.ResponseWriter, r *http.Request, id Identity) {
	key := r.URL.Query().Get("key")
	e.mu.Lock()
	var out []v1Entry
	for _, en := range e.ix.list(id.Repo) {
		if en.Key == key {
			out = append(out, toV1Entry(en))
		}
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": len(out), "artifactCaches": append([]v1Entry{}, out...)})
}

func (e *Emulator) v1Reserve(w http.ResponseWriter, r *http.Request, id Identity) {
	var req struct {
		Key       string `json:"key"`
		Version   string `json:"version"`
		CacheSize *int64 `json:"cacheSize"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		v1Error(w, http.StatusBadRequest, "", "decoding request: "+err.Error())
		return
	}
	if err := checkKeyVersion(req.Key, req.Version); err != nil {
		v1Error(w, http.StatusBadRequest, "ArgumentException", err.(*twirpError).msg)
		return
	}
	if req.CacheSize != nil && *req.CacheSize > maxV1Size {
		v1Error(w, http.StatusBadRequest, "", fmt.Sprintf("Cache size of ~%d MB (%d B) is over the data cap limit, not saving cache.", *req.CacheSize>>20, *req.CacheSize))
		return
	}
	scope := id.Writable()
	if scope == "" {
		v1Error(w, http.StatusForbidden, "", "cache write denied: the runtime token has no writable cache scope")
		return
	}
	e.mu.Lock()
	en, err := e.reserve(id.Repo, scope, req.Key, req.Version)
	e.mu.Unlock()
	if err != nil {
		var te *twirpError
		errors.As(err, &te)
		switch te.code {
		case "already_exists":
			v1Error(w, http.StatusConflict, "ArtifactCacheItemAlreadyExistsException",
				fmt.Sprintf("Cache already exists. Scope: %s, Key: %s, Version: %s", scope, req.Key, req.Version))
		case "resource_exhausted":
			w.Header().Set("Retry-After", strconv.Itoa(int((te.retryAfter+time.Second-1)/time.Second)))
			v1Error(w, http.StatusTooManyRequests, "", te.msg)
		default:
			v1Error(w, http.StatusInternalServerError, "", te.msg)
		}
		return
	}
	writeJSON(w, http.StatusCreated, map[string]int64{"cacheId": en.ID})
}

// v1Entry finds a reserved, unfinalized entry the token may write.
func (e *Emulator) v1Writable(id Identity, cid int64) (*Entry, string) {
	en, ok := e.ix.entries[cid]
	switch {
	case !ok || !sameRepo(en.Repo, id.Repo):
		return nil, "cache entry not found"
	case en.Scope != id.Writable():
		return nil, "cache write denied: the entry belongs to another scope"
	case en.Finalized:
		return nil, "cache entry is already committed"
	}
	return en, ""
}

func blockID(offset int64) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%020d", offset))
}

// v1Upload stages one chunk, addressed by Content-Range: bytes a-b/*.
func (e *Emulator) v1Upload(w http.ResponseWriter, r *http.Request, id Identity, cid int64) {
	start, end, err := parseContentRange(r.Header.Get("Content-Range"))
	if err != nil {
		v1Error(w, http.StatusBadRequest, "", err.Error())
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 256<<20))
	if err != nil {
		v1Error(w, http.StatusBadRequest, "", "reading chunk: "+err.Error())
		return
	}
	if int64(len(data)) != end-start+1 {
		v1Error(w, http.StatusBadRequest, "", fmt.Sprintf("chunk has %d bytes but Content-Range says %d", len(data), end-start+1))
		return
	}
	e.mu.Lock()
	en, msg := e.v1Writable(id, cid)
	var blob string
	if en != nil {
		blob = en.Blob
	}
	e.mu.Unlock()
	if en == nil {
		v1Error(w, http.StatusNotFound, "", msg)
		return
	}
	if err := e.cfg.Blobs.StageBlock(r.Context(), blob, blockID(start), data); err != nil {
		v1Error(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	e.mu.Lock()
	if en.blocks == nil {
		en.blocks = map[int64]int64{}
	}
	en.blocks[start] = int64(len(data))
	e.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func parseContentRange(s string) (int64, int64, error) {
	spec, ok := strings.CutPrefix(s, "bytes ")
	if ok {
		spec, _, ok = strings.Cut(spec, "/")
	}
	a, b, ok2 := strings.Cut(spec, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || !ok2 || err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, fmt.Errorf("invalid Content-Range %q, want bytes start-end/*", s)
	}
	return start, end, nil
}

// v1Commit assembles the staged chunks; they must cover 0..size-1.
func (e *Emulator) v1Commit(w http.ResponseWriter, r *http.Request, id Identity, cid int64) {
	var req struct {
		Size int64 `json:"size"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		v1Error(w, http.StatusBadRequest, "", "decoding request: "+err.Error())
		return
	}
	e.mu.Lock()
	en, msg := e.v1Writable(id, cid)
	if en == nil {
		e.mu.Unlock()
		v1Error(w, http.StatusNotFound, "", msg)
		return
	}
	blob, blocks := en.Blob, maps.Clone(en.blocks)
	e.mu.Unlock()
	offsets := slices.Sorted(maps.Keys(blocks))
	var next int64
	var ids []string
	for _, off := range offsets {
		if off != next {
			v1Error(w, http.StatusBadRequest, "", fmt.Sprintf("uploaded chunks leave a gap at byte %d", next))
			return
		}
		next += blocks[off]
		ids = append(ids, blockID(off))
	}
	if next != req.Size {
		v1Error(w, http.StatusBadRequest, "", fmt.Sprintf("Cache size mismatch: uploaded %d bytes, commit says %d", next, req.Size))
		return
	}
	if err := e.cfg.Blobs.CommitBlocks(r.Context(), blob, ids); err != nil {
		v1Error(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	_, evicted, err := e.finalize(en, req.Size)
	if err != nil {
		v1Error(w, http.StatusConflict, "", err.(*twirpError).msg)
		return
	}
	e.deleteBlobs(r, evicted)
	w.WriteHeader(http.StatusNoContent)
}
