// Package runnerenv reads facts about the GitHub Actions runner from its
// environment variables. It is pure: getenv is injected. Planning (which
// fills BuildKit's gha attributes) and the ghacache client both ask it, so
// they can never disagree about which cache protocol the runner speaks.
package runnerenv

import (
	"net/url"
	"strings"
)

// CacheServiceV2 reports whether the runner's cache service speaks v2
// (Twirp at ACTIONS_RESULTS_URL) rather than the legacy v1 REST API at
// ACTIONS_CACHE_URL (CacheServiceURL gives the URL). It is the rule of
// @actions/cache, actions/toolkit packages/cache/src/internal/config.ts,
// getCacheServiceVersion:
//
//	if (isGhes()) return 'v1'
//	return process.env['ACTIONS_CACHE_SERVICE_V2'] ? 'v2' : 'v1'
//
// so v2 only when ACTIONS_CACHE_SERVICE_V2 is non-empty (any value, "false"
// included: a JavaScript truthy string), and never on GHES. A results URL
// alone is not v2: act and other third-party runners set
// ACTIONS_RESULTS_URL to a server that does not speak the cache's Twirp API.
//
// One override comes first, which the toolkit does not have:
// ACTIONS_CACHE_API_FORCE_VERSION=v1|v2, go-actions-cache's (the client
// inside BuildKit's gha backend). No runner sets it; it is for a user who
// knows better.
func CacheServiceV2(getenv func(string) string) bool {
	switch strings.ToLower(strings.TrimSpace(getenv("ACTIONS_CACHE_API_FORCE_VERSION"))) {
	case "v1":
		return false
	case "v2":
		return true
	}
	if IsGHES(getenv("GITHUB_SERVER_URL")) {
		return false
	}
	return getenv("ACTIONS_CACHE_SERVICE_V2") != ""
}

// CacheServiceURL is the base URL of the cache service for the protocol
// CacheServiceV2 chose, as the toolkit's getCacheServiceURL: v2 at
// ACTIONS_RESULTS_URL; v1 at ACTIONS_CACHE_URL, else ACTIONS_RESULTS_URL.
func CacheServiceURL(getenv func(string) string) string {
	results := strings.TrimSpace(getenv("ACTIONS_RESULTS_URL"))
	if CacheServiceV2(getenv) {
		return results
	}
	if u := strings.TrimSpace(getenv("ACTIONS_CACHE_URL")); u != "" {
		return u
	}
	return results
}

// IsGHES is the toolkit's isGhes (config.ts): GITHUB_SERVER_URL, default
// https://github.com, is GHES unless its host is github.com, ends in
// .ghe.com (GHE.com data residency) or ends in .localhost. Loopback
// addresses and a bare "localhost" are GHES, as for the toolkit. The
// toolkit throws on a URL it cannot parse; here that is not GHES.
func IsGHES(serverURL string) bool {
	if serverURL == "" {
		return false
	}
	u, err := url.Parse(serverURL)
	if err != nil || u.Hostname() == "" {
		return false
	}
	h := strings.ToUpper(strings.TrimRight(u.Hostname(), " \t\r\n"))
	return h != "GITHUB.COM" && !strings.HasSuffix(h, ".GHE.COM") && !strings.HasSuffix(h, ".LOCALHOST")
}
