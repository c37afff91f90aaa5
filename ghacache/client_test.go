package ghacache

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name string
		v2   bool
		size int
	}{
		{"v2 multi-block", true, 10*1024 + 17},
		{"v2 single put", true, 1000},
		{"v2 empty", true, 0},
		{"v1 multi-chunk", false, 10*1024 + 17},
		{"v1 single chunk", false, 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeService(t)
			c, _ := newTestClient(t, f, tt.v2, nil)
			ctx := context.Background()
			data := randomBytes(t, tt.size)
			v := BuildKitVersion()

			if _, ok, err := c.Lookup(ctx, "k-1", nil, v); err != nil || ok {
				t.Fatalf("Lookup before save = %v, %v; want miss", ok, err)
			}
			if err := c.Save(ctx, "k-1", v, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatalf("Save: %v", err)
			}
			err := c.Save(ctx, "k-1", v, bytes.NewReader(data), int64(len(data)))
			if !errors.Is(err, ErrAlreadyExists) {
				t.Fatalf("second Save = %v, want ErrAlreadyExists", err)
			}
			e, ok, err := c.Lookup(ctx, "k-1", nil, v)
			if err != nil || !ok || e.Key != "k-1" {
				t.Fatalf("Lookup = %+v, %v, %v", e, ok, err)
			}
			if _, ok, _ := c.Lookup(ctx, "k-1", nil, "other-version"); ok {
				t.Error("Lookup with another version hit")
			}
			rc, err := c.Load(ctx, e)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Load read %d bytes (err %v), want %d identical", len(got), err, len(data))
			}
		})
	}
}

func TestRestoreKeys(t *testing.T) {
	for _, v2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("v2=%v", v2), func(t *testing.T) {
			f := newFakeService(t)
			c, _ := newTestClient(t, f, v2, nil)
			ctx, v := context.Background(), "v"
			for _, k := range []string{"index-a#1", "index-a#2", "index-b#1"} {
				if err := c.Save(ctx, k, v, strings.NewReader(k), int64(len(k))); err != nil {
					t.Fatal(err)
				}
			}
			tests := []struct {
				key     string
				restore []string
				want    string
			}{
				{"index-a#", []string{"index-a#"}, "index-a#2"}, // BuildKit's SaveMutable lookup: newest wins
				{"nope", []string{"nope-", "index-b"}, "index-b#1"},
				{"index-a#1", []string{"index-b"}, "index-a#1"}, // exact beats prefix
				{"nope", []string{"zzz"}, ""},
			}
			for _, tt := range tests {
				e, ok, err := c.Lookup(ctx, tt.key, tt.restore, v)
				if err != nil {
					t.Fatal(err)
				}
				if got := map[bool]string{true: e.Key}[ok]; got != tt.want {
					t.Errorf("Lookup(%q, %q) = %q, want %q", tt.key, tt.restore, got, tt.want)
				}
			}
		})
	}
}

// Blocks go up in parallel, in any order; the committed block list must
// still be in blob order.
func TestParallelBlocksCommitInOrder(t *testing.T) {
	f := newFakeService(t)
	var inflight, peak atomic.Int32
	f.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("comp") == "block" {
			n := inflight.Add(1)
			defer inflight.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			// Earlier blocks finish later, to scramble completion order.
			id := r.URL.Query().Get("blockid")
			if strings.HasSuffix(id, "MA==") || strings.HasSuffix(id, "MQ==") {
				time.Sleep(30 * time.Millisecond)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return false
	}
	c, _ := newTestClient(t, f, true, func(c *Config) { c.UploadConcurrency = 4 })
	data := randomBytes(t, 9*1024+5) // 10 blocks of 1 KiB
	if err := c.Save(context.Background(), "k", "v", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	order := f.blockList["b1"]
	if len(order) != 10 {
		t.Fatalf("committed %d blocks, want 10", len(order))
	}
	for i, id := range order {
		if want := fmt.Sprintf("block-%08d", i); id != want {
			t.Errorf("block %d is %q, want %q", i, id, want)
		}
	}
	if !bytes.Equal(f.blobs["b1"], data) {
		t.Error("committed blob differs from the data")
	}
	if p := peak.Load(); p < 2 || p > 4 {
		t.Errorf("peak concurrent block uploads = %d, want 2..4", p)
	}
}

func TestRetries(t *testing.T) {
	date := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		responses []func(w http.ResponseWriter) // served in order to CreateCacheEntry, then pass through
		wantWaits []time.Duration
		wantErr   error // nil: success
		errText   string
	}{
		{
			name: "429 Retry-After seconds",
			responses: []func(http.ResponseWriter){func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(http.StatusTooManyRequests)
			}},
			wantWaits: []time.Duration{7 * time.Second},
		},
		{
			name: "503 Retry-After HTTP date",
			responses: []func(http.ResponseWriter){func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", date.Add(12*time.Second).Format(http.TimeFormat))
				w.WriteHeader(http.StatusServiceUnavailable)
			}},
			wantWaits: []time.Duration{12 * time.Second},
		},
		{
			name: "5xx without Retry-After backs off exponentially",
			responses: []func(http.ResponseWriter){
				status(500), status(502), status(504),
			},
			wantWaits: []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second},
		},
		{
			name: "gives up after MaxRetries",
			responses: []func(http.ResponseWriter){
				status(500), status(500), status(500), status(500),
			},
			wantWaits: []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second},
			errText:   "gave up after 4 attempts",
		},
		{
			name: "429 exhausted is ErrRateLimited",
			responses: []func(http.ResponseWriter){
				status(429), status(429), status(429), status(429),
			},
			wantWaits: []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second},
			wantErr:   ErrRateLimited,
		},
		{
			name: "Retry-After beyond the limit fails fast",
			responses: []func(http.ResponseWriter){func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", "3600")
				w.WriteHeader(http.StatusTooManyRequests)
			}},
			wantErr: ErrRateLimited,
			errText: "more than the 1m0s limit",
		},
		{
			name:      "400 is not retried",
			responses: []func(http.ResponseWriter){status(400)},
			errText:   "400 Bad Request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeService(t)
			var n atomic.Int32
			f.fault = func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, "/CreateCacheEntry") {
					return false
				}
				i := int(n.Add(1)) - 1
				if i < len(tt.responses) {
					tt.responses[i](w)
					return true
				}
				return false
			}
			c, s := newTestClient(t, f, true, func(c *Config) { c.MaxRetries = 3 })
			c.r.now = func() time.Time { return date }
			err := c.Save(context.Background(), "k", "v", strings.NewReader("data"), 4)
			if tt.wantErr == nil && tt.errText == "" {
				if err != nil {
					t.Fatalf("Save: %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("Save succeeded, want an error")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %q is not %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not contain %q", err, tt.errText)
				}
			}
			if got := s.got(); fmt.Sprint(got) != fmt.Sprint(tt.wantWaits) {
				t.Errorf("waits = %v, want %v", got, tt.wantWaits)
			}
		})
	}
}

func status(code int) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) { w.WriteHeader(code) }
}

func TestRetryNetworkErrorAndCancel(t *testing.T) {
	f := newFakeService(t)
	var n atomic.Int32
	f.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("comp") == "block" && n.Add(1) <= 2 {
			// Drop the connection mid-request: a network error.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return true
		}
		return false
	}
	c, s := newTestClient(t, f, true, nil)
	data := randomBytes(t, 3000)
	if err := c.Save(context.Background(), "k", "v", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Save after dropped connections: %v", err)
	}
	if len(s.got()) != 2 {
		t.Errorf("retried %d times, want 2", len(s.got()))
	}

	// A cancelled context stops the retry loop at the first wait.
	f.fault = func(w http.ResponseWriter, r *http.Request) bool { w.WriteHeader(503); return true }
	ctx, cancel := context.WithCancel(context.Background())
	c.r.sleep = func(ctx context.Context, d time.Duration) error { cancel(); return sleepCtx(ctx, d) }
	err := c.Save(ctx, "k2", "v", bytes.NewReader(data), int64(len(data)))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Save with cancelled context = %v, want context.Canceled", err)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"5", 5 * time.Second, true},
		{" 0 ", 0, true},
		{"-3", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := retryAfter(tt.in, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// No error may carry the signed URL's signature or the runtime token,
// whatever failed: a refused upload whose body echoes the URL, a dropped
// connection, or a service error that echoes the token.
func TestErrorsAreRedacted(t *testing.T) {
	tests := []struct {
		name  string
		fault func(f *fakeService) func(w http.ResponseWriter, r *http.Request) bool
	}{
		{"403 echoing the URL", func(f *fakeService) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasPrefix(r.URL.Path, "/blob/") {
					return false
				}
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, `<Error><Code>AuthenticationFailed</Code><Message>Signature did not match for %s sig=%s</Message></Error>`, r.URL, r.URL.Query().Get("sig"))
				return true
			}
		}},
		{"connection dropped", func(f *fakeService) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasPrefix(r.URL.Path, "/blob/") {
					return false
				}
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
				return true
			}
		}},
		{"service echoes the token", func(f *fakeService) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasPrefix(r.URL.Path, "/blob/") {
					return false
				}
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"code":"invalid_argument","msg":"bad auth header %s"}`, r.Header.Get("Authorization"))
				return true
			}
		}},
	}
	for _, tt := range tests {
		for _, v2 := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s v2=%v", tt.name, v2), func(t *testing.T) {
				f := newFakeService(t)
				f.fault = tt.fault(f)
				c, _ := newTestClient(t, f, v2, func(c *Config) { c.MaxRetries = 1 })
				data := randomBytes(t, 4000)
				ctx := context.Background()
				// v1 uploads through the service, so a blob fault shows on download.
				err := c.Save(ctx, "k", "v", bytes.NewReader(data), int64(len(data)))
				if err == nil {
					var e Entry
					e, _, err = c.Lookup(ctx, "k", nil, "v")
					if err == nil {
						_, err = c.Load(ctx, e)
					}
				}
				if err == nil {
					t.Fatal("no error, want one")
				}
				msg := err.Error()
				for _, secret := range []string{"sig=SECRET", "SECRETSIG", f.token, "runtime-token-secret"} {
					if strings.Contains(msg, secret) {
						t.Errorf("error leaks %q: %s", secret, msg)
					}
				}
				if strings.HasPrefix(tt.name, "403") && !regexp.MustCompile(`/blob/[a-z0-9-]+\?\*\*\*`).MatchString(msg) {
					t.Errorf("error %q should name the redacted URL", msg)
				}
				// Printing an Entry must not leak its URL either.
				e := Entry{Key: "k", DownloadURL: SignedURL(f.signed("x"))}
				for _, s := range []string{fmt.Sprint(e), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
					if strings.Contains(s, "SECRETSIG") {
						t.Errorf("formatted Entry leaks the signature: %s", s)
					}
				}
			})
		}
	}
}

// A download that breaks mid-way resumes with a ranged GET; an expired
// URL (403) is refreshed by a new lookup.
func TestLoadResumesAndRefreshes(t *testing.T) {
	f := newFakeService(t)
	c, _ := newTestClient(t, f, true, nil)
	ctx := context.Background()
	data := randomBytes(t, 50000)
	if err := c.Save(ctx, "k", "v", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	e, ok, err := c.Lookup(ctx, "k", nil, "v")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	var gets atomic.Int32
	var ranges []string
	f.fault = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/blob/") {
			return false
		}
		ranges = append(ranges, r.Header.Get("Range"))
		if gets.Add(1) == 1 {
			// Promise everything, send 1000 bytes, hang up.
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:1000])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return true
		}
		return false
	}
	rc, err := c.Load(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("resumed download: %d bytes, err %v", len(got), err)
	}
	if len(ranges) != 2 || ranges[1] != "bytes=1000-" {
		t.Errorf("Range headers = %q, want [\"\" \"bytes=1000-\"]", ranges)
	}

	// Expired URL: the stored URL carries a wrong signature.
	f.fault = nil
	stale := e
	stale.DownloadURL = SignedURL(strings.Replace(string(e.DownloadURL), "sig=", "sig=EXPIRED", 1))
	rc, err = c.Load(ctx, stale)
	if err != nil {
		t.Fatalf("Load with expired URL: %v", err)
	}
	got, _ = io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Error("refreshed download differs")
	}

	// Evicted blob: ErrNotFound.
	f.mu.Lock()
	delete(f.blobs, "b1")
	f.mu.Unlock()
	_, err = c.Load(ctx, e)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Load of an evicted blob = %v, want ErrNotFound", err)
	}
}

func TestKeyValidation(t *testing.T) {
	f := newFakeService(t)
	c, _ := newTestClient(t, f, true, nil)
	ctx := context.Background()
	for _, k := range []string{"", "a,b", strings.Repeat("x", 513)} {
		if err := c.Save(ctx, k, "v", strings.NewReader(""), 0); err == nil {
			t.Errorf("Save(%.20q) accepted a bad key", k)
		}
		if _, _, err := c.Lookup(ctx, "ok", []string{k}, "v"); err == nil {
			t.Errorf("Lookup with restore key %.20q accepted it", k)
		}
	}
	if _, _, err := c.Lookup(ctx, "ok", nil, ""); err == nil {
		t.Error("Lookup accepted an empty version")
	}
	if len(f.log()) != 0 {
		t.Errorf("bad input reached the server: %v", f.log())
	}
}

func TestNewClientErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no token", Config{ResultsURL: "http://x/", ServiceV2: true}, "no runtime token"},
		{"no v2 url", Config{Token: "t", ServiceV2: true, CacheURL: "http://x/"}, "ACTIONS_RESULTS_URL"},
		{"no v1 url", Config{Token: "t", ResultsURL: "http://x/"}, "ACTIONS_CACHE_URL"},
		{"bad url redacted", Config{Token: "t", ServiceV2: true, ResultsURL: "ftp://x/?sig=zzzz"}, "ftp://x/?***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewClient = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// A wrong base URL must be an error, not a silent cache miss.
func TestWrongURLIsNotAMiss(t *testing.T) {
	for _, v2 := range []bool{true, false} {
		f := newFakeService(t)
		c, _ := newTestClient(t, f, v2, func(c *Config) {
			c.ResultsURL += "/wrong/"
			c.CacheURL += "wrong/"
		})
		if _, _, err := c.Lookup(context.Background(), "k", nil, "v"); err == nil {
			t.Errorf("v2=%v: Lookup against a wrong URL reported a miss", v2)
		}
	}
}
