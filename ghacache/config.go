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
}

// Defaults, chosen like the toolkit's (4 parallel 32 MiB chunks; 5 attempts).
const (
	DefaultUploadConcurrency = 4
	DefaultBlockSize         = 32 << 20
	DefaultMaxRetries        = 5
	DefaultMaxRetryWait      = 60 * time.Second
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
	if c.MaxRetryWait <= 0 {
		c.MaxRetryWait = DefaultMaxRetryWait
	}
	return c
}

// ConfigFromEnv reads the runner's environment through getenv. It reports
// false when no cache service is reachable (no token, or no URL for the
// detected protocol).
//
// Protocol choice, first rule that applies:
//  1. ACTIONS_CACHE_API_FORCE_VERSION=v1|v2 (the override BuildKit's
//     go-actions-cache and buildx honour).
//  2. GHES → v1. actions/toolkit packages/cache/src/internal/config.ts,
//     getCacheServiceVersion: "Cache service v2 is not supported on GHES"
//     (isGhes: GITHUB_SERVER_URL host is not github.com, *.ghe.com or
//     *.localhost; we also treat localhost and loopback IPs as not GHES so a
//     local emulator can serve v2).
//  3. ACTIONS_CACHE_SERVICE_V2 set (and not a false boolean) → v2, as the
//     toolkit does. The runner sets it to "True" for JavaScript actions from
//     the job variable actions_uses_cache_service_v2
//     (NodeScriptActionHandler.cs).
//  4. ACTIONS_RESULTS_URL set → v2. Container actions are given
//     ACTIONS_RESULTS_URL but not ACTIONS_CACHE_SERVICE_V2
//     (ContainerActionHandler.cs sets only the URLs), and github.com shut v1
//     down in April 2025, so off GHES the results service is the live one.
//  5. Otherwise v1 at ACTIONS_CACHE_URL.
func ConfigFromEnv(getenv func(string) string) (Config, bool) {
	c := Config{
		ResultsURL: strings.TrimSpace(getenv("ACTIONS_RESULTS_URL")),
		CacheURL:   strings.TrimSpace(getenv("ACTIONS_CACHE_URL")),
		Token:      strings.TrimSpace(getenv("ACTIONS_RUNTIME_TOKEN")),
	}
	c.ServiceV2 = runnerenv.CacheServiceV2(getenv)
	if c.Token == "" {
		return c, false
	}
	if c.ServiceV2 {
		return c, c.ResultsURL != ""
	}
	return c, c.CacheURL != ""
}
