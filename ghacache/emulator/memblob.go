package emulator

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MemoryStore is a BlobStore kept in memory, for unit tests that run
// without Azurite. It serves the small part of the Azure Blob REST API that
// cache clients use (Put Blob, Put Block, Put Block List, Get Blob with
// ranges, Get Blob Properties) behind its own signed URLs. Serve it with
// httptest and set URL before use. Fidelity proofs use AzureStore instead.
type MemoryStore struct {
	// URL is the base URL this store is served at, e.g. an httptest URL.
	URL string

	key   []byte
	mu    sync.Mutex
	blobs map[string][]byte
	// staged blocks per blob, by block ID
	staged map[string]map[string][]byte
}

// NewMemoryStore returns an empty store with a random signing key.
func NewMemoryStore() *MemoryStore {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &MemoryStore{key: key, blobs: map[string][]byte{}, staged: map[string]map[string][]byte{}}
}

func (m *MemoryStore) sign(name, perm string, expiry int64) string {
	h := hmac.New(sha256.New, m.key)
	fmt.Fprintf(h, "%s\n%s\n%d", name, perm, expiry)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// SignedURL returns URL/name?sp=..&se=..&sig=..
func (m *MemoryStore) SignedURL(name string, access BlobAccess, expiry time.Time) (string, error) {
	if m.URL == "" {
		return "", fmt.Errorf("memory blob store: URL not set")
	}
	perm := "r"
	if access == AccessWrite {
		perm = "cw"
	}
	q := url.Values{}
	q.Set("sp", perm)
	q.Set("se", strconv.FormatInt(expiry.Unix(), 10))
	q.Set("sig", m.sign(name, perm, expiry.Unix()))
	return strings.TrimRight(m.URL, "/") + "/" + name + "?" + q.Encode(), nil
}

// Size returns the committed length.
func (m *MemoryStore) Size(_ context.Context, name string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[name]
	if !ok {
		return 0, ErrBlobNotFound
	}
	return int64(len(b)), nil
}

// Delete removes the blob and its staged blocks.
func (m *MemoryStore) Delete(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.blobs, name)
	delete(m.staged, name)
	return nil
}

// StageBlock keeps an uncommitted block.
func (m *MemoryStore) StageBlock(_ context.Context, name, blockID string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.staged[name] == nil {
		m.staged[name] = map[string][]byte{}
	}
	m.staged[name][blockID] = append([]byte(nil), data...)
	return nil
}

// CommitBlocks concatenates staged blocks into the blob.
func (m *MemoryStore) CommitBlocks(_ context.Context, name string, blockIDs []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []byte
	for _, id := range blockIDs {
		b, ok := m.staged[name][id]
		if !ok {
			return fmt.Errorf("committing blocks: block %q not staged", id)
		}
		out = append(out, b...)
	}
	m.blobs[name] = out
	delete(m.staged, name)
	return nil
}

// ServeHTTP answers the Azure Blob operations that cache clients use.
func (m *MemoryStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	q := r.URL.Query()
	want := "r"
	if r.Method == http.MethodPut {
		want = "cw"
	}
	se, _ := strconv.ParseInt(q.Get("se"), 10, 64)
	if q.Get("sp") != want || !hmac.Equal([]byte(q.Get("sig")), []byte(m.sign(name, want, se))) {
		azureError(w, http.StatusForbidden, "AuthenticationFailed", "Server failed to authenticate the request.")
		return
	}
	if time.Now().Unix() > se {
		azureError(w, http.StatusForbidden, "AuthenticationFailed", "Signed expiry time has passed.")
		return
	}
	w.Header().Set("x-ms-request-id", strconv.FormatInt(time.Now().UnixNano(), 36))
	w.Header().Set("x-ms-version", "2025-01-05")
	switch r.Method {
	case http.MethodPut:
		m.put(w, r, name)
	case http.MethodGet, http.MethodHead:
		m.get(w, r, name)
	default:
		azureError(w, http.StatusMethodNotAllowed, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.")
	}
}

func (m *MemoryStore) put(w http.ResponseWriter, r *http.Request, name string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		azureError(w, http.StatusBadRequest, "InvalidInput", err.Error())
		return
	}
	ctx := r.Context()
	switch r.URL.Query().Get("comp") {
	case "block":
		_ = m.StageBlock(ctx, name, r.URL.Query().Get("blockid"), body)
	case "blocklist":
		var bl struct {
			IDs []string `xml:",any"`
		}
		if err := xml.Unmarshal(body, &bl); err != nil {
			azureError(w, http.StatusBadRequest, "InvalidXmlDocument", err.Error())
			return
		}
		if err := m.CommitBlocks(ctx, name, bl.IDs); err != nil {
			azureError(w, http.StatusBadRequest, "InvalidBlockList", err.Error())
			return
		}
	case "":
		m.mu.Lock()
		m.blobs[name] = body
		m.mu.Unlock()
	default:
		azureError(w, http.StatusBadRequest, "UnsupportedQueryParameter", "unsupported comp")
		return
	}
	w.Header().Set("ETag", `"0x1"`)
	w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusCreated)
}

func (m *MemoryStore) get(w http.ResponseWriter, r *http.Request, name string) {
	m.mu.Lock()
	b, ok := m.blobs[name]
	m.mu.Unlock()
	if !ok {
		azureError(w, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
		return
	}
	h := w.Header()
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"0x1"`)
	h.Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	rng := r.Header.Get("x-ms-range")
	if rng == "" {
		rng = r.Header.Get("Range")
	}
	start, end := int64(0), int64(len(b))-1
	status := http.StatusOK
	if rng != "" {
		s, e, ok := parseByteRange(rng, int64(len(b)))
		if !ok {
			azureError(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The range specified is invalid for the current size of the resource.")
			return
		}
		start, end, status = s, e, http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(b)))
	}
	h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodGet {
		_, _ = w.Write(b[start : end+1])
	}
}

// parseByteRange parses "bytes=a-b" or "bytes=a-" against size.
func parseByteRange(s string, size int64) (int64, int64, bool) {
	spec, ok := strings.CutPrefix(s, "bytes=")
	if !ok {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false
	}
	end := size - 1
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return 0, 0, false
		}
		end = min(e, size-1)
	}
	return start, end, true
}

func azureError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("x-ms-error-code", code)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	var m strings.Builder
	_ = xml.EscapeText(&m, []byte(msg))
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, m.String())
}

var _ BlobStore = (*MemoryStore)(nil)
