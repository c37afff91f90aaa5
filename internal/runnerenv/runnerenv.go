// Package runnerenv reads facts about the GitHub Actions runner from its
// environment variables. It is pure: getenv is injected. Planning (which
// fills BuildKit's gha attributes) and the ghacache client both ask it, so
// they can never disagree about which cache protocol the runner speaks.
package runnerenv

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// CacheServiceV2 reports whether the runner's cache service speaks v2
// (Twirp at ACTIONS_RESULTS_URL) rather than the legacy v1 REST API at
// ACTIONS_CACHE_URL. The first rule that applies wins:
//
//  1. ACTIONS_CACHE_API_FORCE_VERSION=v1|v2 (the override go-actions-cache
//     and buildx honour).
//  2. GHES → v1. actions/toolkit packages/cache/src/internal/config.ts,
//     getCacheServiceVersion: "Cache service v2 is not supported on GHES"
//     (isGhes: GITHUB_SERVER_URL host is not github.com, *.ghe.com or
//     *.localhost; loopback hosts count as not GHES too, so a local
//     emulator can serve v2).
//  3. ACTIONS_CACHE_SERVICE_V2 set (and not a false boolean) → v2, as the
//     toolkit does. The runner sets it for JavaScript actions only
//     (NodeScriptActionHandler.cs).
//  4. ACTIONS_RESULTS_URL set → v2. Container actions get the URLs but not
//     ACTIONS_CACHE_SERVICE_V2 (ContainerActionHandler.cs), and github.com
//     shut v1 down in April 2025, so off GHES the results service is the
//     live one.
//  5. Otherwise v1.
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
	if v := strings.TrimSpace(getenv("ACTIONS_CACHE_SERVICE_V2")); v != "" {
		b, err := strconv.ParseBool(v)
		return err != nil || b
	}
	return strings.TrimSpace(getenv("ACTIONS_RESULTS_URL")) != ""
}

// IsGHES mirrors the toolkit's isGhes, plus loopback hosts. An empty URL
// is github.com.
func IsGHES(serverURL string) bool {
	if serverURL == "" {
		return false
	}
	u, err := url.Parse(serverURL)
	if err != nil || u.Hostname() == "" {
		return false
	}
	h := strings.ToLower(strings.TrimSpace(u.Hostname()))
	switch {
	case h == "github.com", strings.HasSuffix(h, ".ghe.com"),
		h == "localhost", strings.HasSuffix(h, ".localhost"):
		return false
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return false
	}
	return true
}
