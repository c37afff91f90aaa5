package ghacache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bkcache/bkcache/internal/redact"
)

// Errors callers can test with errors.Is.
var (
	ErrAlreadyExists = errors.New("cache entry already exists")
	ErrRateLimited   = errors.New("rate limited")
	ErrNotFound      = errors.New("not found")
)

// StatusError is a non-2xx answer from the cache service or blob store.
// URL is already redacted; Message is the server's text, redacted.
type StatusError struct {
	Op         string // e.g. "CreateCacheEntry", "put block"
	Method     string
	URL        string
	StatusCode int
	Code       string // Twirp error code or Azure x-ms-error-code, if any
	Message    string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s: %s %s: %d %s", e.Op, e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is maps statuses onto the package's sentinel errors.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrAlreadyExists:
		return e.StatusCode == http.StatusConflict || e.Code == "already_exists"
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound || e.Code == "not_found"
	}
	return false
}

// retrier runs one HTTP exchange with bounded, jittered exponential
// backoff. Sleep, clock and jitter are fields so tests run instantly and
// deterministically.
type retrier struct {
	hc         *http.Client
	maxRetries int
	maxWait    time.Duration
	base       time.Duration
	secrets    []string

	sleep  func(ctx context.Context, d time.Duration) error
	now    func() time.Time
	jitter func(d time.Duration) time.Duration // returns a value in [d/2, d]
}

func newRetrier(c Config) *retrier {
	return &retrier{
		hc:         c.HTTPClient,
		maxRetries: c.MaxRetries,
		maxWait:    c.MaxRetryWait,
		base:       500 * time.Millisecond,
		secrets:    []string{c.Token},
		sleep:      sleepCtx,
		now:        time.Now,
		jitter:     func(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) },
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// backoff is base·2^attempt, capped at maxWait, with jitter.
func (r *retrier) backoff(attempt int) time.Duration {
	d := r.base << min(attempt, 20)
	if d <= 0 || d > r.maxWait {
		d = r.maxWait
	}
	return r.jitter(d)
}

// retryAfter parses Retry-After as delta-seconds or an HTTP date.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(h); err == nil {
		// Clamp before multiplying: a huge value must not wrap negative.
		return time.Duration(min(max(secs, 0), 1<<31)) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// do sends the request that newReq builds (a fresh one per attempt, so
// bodies can be replayed) and returns the first response that is not
// retryable. 2xx and non-retryable 4xx responses are returned to the
// caller with their body open. Network errors, 408, 429 and 5xx are
// retried; Retry-After is honoured when present (on any of them, and
// required by GitHub on 429), otherwise backoff. Every error is redacted.
func (r *retrier) do(ctx context.Context, op string, newReq func(ctx context.Context) (*http.Request, error)) (*http.Response, error) {
	var lastErr error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, r.redact(fmt.Errorf("%s: %w", op, errors.Join(context.Cause(ctx), lastErr)))
		}
		req, err := newReq(ctx)
		if err != nil {
			return nil, r.redact(fmt.Errorf("%s: %w", op, err))
		}
		resp, err := r.hc.Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, r.redact(fmt.Errorf("%s: %w", op, err))
			}
			lastErr = fmt.Errorf("%s: %w", op, err)
			wait = r.backoff(attempt)
		case !retryableStatus(resp.StatusCode):
			return resp, nil
		default:
			lastErr = r.statusError(op, req, resp)
			if d, ok := retryAfter(resp.Header.Get("Retry-After"), r.now()); ok {
				if d > r.maxWait {
					return nil, r.redact(fmt.Errorf("%w; server asks to retry after %s, more than the %s limit", lastErr, d.Round(time.Second), r.maxWait))
				}
				wait = d
			} else {
				wait = r.backoff(attempt)
			}
		}
		if attempt >= r.maxRetries {
			return nil, r.redact(fmt.Errorf("%w (gave up after %d attempts)", lastErr, attempt+1))
		}
		if err := r.sleep(ctx, wait); err != nil {
			return nil, r.redact(fmt.Errorf("%w (while waiting to retry: %w)", lastErr, err))
		}
	}
}

// statusError reads a bounded error body, closes it, and builds a
// StatusError from Twirp ({"code","msg"}), GitHub ({"message"}) or Azure
// (x-ms-error-code, XML <Message>) shapes.
func (r *retrier) statusError(op string, req *http.Request, resp *http.Response) *StatusError {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &StatusError{Op: op, Method: req.Method, URL: redact.URL(req.URL.String()), StatusCode: resp.StatusCode}
	e.Code, e.Message = parseErrorBody(body)
	if c := resp.Header.Get("x-ms-error-code"); c != "" && e.Code == "" {
		e.Code = c
	}
	e.Message = redact.String(e.Message, r.secrets...)
	return e
}

func (r *retrier) redact(err error) error { return redact.Error(err, r.secrets...) }
