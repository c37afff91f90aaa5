package ghacache

import (
	"net/http"
	"strings"
	"time"

	"github.com/bkcache/bkcache/internal/runnerenv"
)

// Config says where the cache service is and how to talk to it. Zero
// values of the tuning fields mean the defaults below.
type Config struct {
	ResultsURL string // cache service v2 base (ACTIONS_RESULTS_URL)
	CacheURL   string // legacy v1 base (ACTIONS_CACHE_URL), spoken by GHES
	Token      string // ACTIONS_RUNTIME_TOKEN
	ServiceV2  bool   // speak the v2 Twirp API to ResultsURL, else v1 to CacheURL

	HTTPClient        *http.Client  // default http.DefaultClient
	UploadConcurrency int           // parallel block uploads, default 4
	BlockSize         int64         // Azure block / v1 chunk size, default 32 MiB
	MaxRetries        int           // retries after the first attempt, default 5
	MaxRetryWait      time.Duration // longest single wait (Retry-After or backoff) honoured, default 60s
	// UploadsPerMinute caps the entries this client creates in any minute
	// (GitHub refuses more than 200 per repository with 429), default 200.
	UploadsPerMinute int
}

// Defaults, chosen like the toolkit's (4 parallel 32 MiB chunks; 5 attempts).
const (
	DefaultUploadConcurrency = 4
	DefaultBlockSize         = 32 << 20
	DefaultMaxRetries        = 5
	DefaultMaxRetryWait      = 60 * time.Second
	DefaultUploadsPerMinute  = 200
)

func (c Config) withDefaults() Config {
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.UploadConcurrency <= 0 {
		c.UploadConcurrency = DefaultUploadConcurrency
	}
	if c.BlockSize <= 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.UploadsPerMinute <= 0 {
		c.UploadsPerMinute = DefaultUploadsPerMinute
	}
	if c.MaxRetryWait <= 0 {
		c.MaxRetryWait = DefaultMaxRetryWait
	}
	return c
}

// ConfigFromEnv reads the runner's environment through getenv. It reports
// false when no cache service is reachable (no token, or no URL for the
// detected protocol).
//
// The protocol and URL are @actions/cache's choice (runnerenv.CacheServiceV2
// and CacheServiceURL): v2 at ACTIONS_RESULTS_URL only with
// ACTIONS_CACHE_SERVICE_V2 and never on GHES; otherwise v1 at
// ACTIONS_CACHE_URL, else ACTIONS_RESULTS_URL.
func ConfigFromEnv(getenv func(string) string) (Config, bool) {
	c := Config{
		ResultsURL: strings.TrimSpace(getenv("ACTIONS_RESULTS_URL")),
		Token:      strings.TrimSpace(getenv("ACTIONS_RUNTIME_TOKEN")),
		ServiceV2:  runnerenv.CacheServiceV2(getenv),
	}
	c.CacheURL = strings.TrimSpace(getenv("ACTIONS_CACHE_URL"))
	if c.CacheURL == "" {
		c.CacheURL = c.ResultsURL
	}
	if c.Token == "" {
		return c, false
	}
	return c, runnerenv.CacheServiceURL(getenv) != ""
}
