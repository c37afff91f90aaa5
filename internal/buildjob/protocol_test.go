package buildjob

import (
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"

	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/internal/runnerenv"
)

// buildkitGHAProtocol is how BuildKit's gha backend reads the attributes
// bkcache hands it: moby/buildkit v0.34.2 cache/remotecache/gha/gha.go,
// getConfig. url_v2 wins unless version=1; without a version it guesses
// from the URL.
func buildkitGHAProtocol(a map[string]string) (v2 bool, url string) {
	version, _ := strconv.Atoi(a["version"])
	if version != 1 {
		if u, ok := a["url_v2"]; ok {
			url, version = u, 2
		}
	}
	if url == "" {
		url = a["url"]
	}
	if version == 0 {
		version = 1
		if strings.Contains(url, "results-receiver.actions.githubusercontent.com") {
			version = 2
		}
	}
	return version == 2, url
}

// TestGHAProtocolAgrees: for the runner's variables, BuildKit's gha
// backend (the attributes plan.AddGitHubRuntime fills) and bkcache's own
// client (the data plane's ghaClientConfig) speak the protocol, at the URL,
// that @actions/cache would (runnerenv.CacheServiceV2, whose table test
// cites the toolkit's rule).
func TestGHAProtocolAgrees(t *testing.T) {
	const (
		results  = "https://results-receiver.actions.githubusercontent.com/"
		cacheURL = "https://artifactcache.actions.githubusercontent.com/x/"
	)
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"javascript action on github.com", map[string]string{"ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": results, "ACTIONS_CACHE_URL": cacheURL}},
		// BuildKit would take this results URL for v2 if no version were given.
		{"github.com URLs without the flag", map[string]string{"ACTIONS_RESULTS_URL": results, "ACTIONS_CACHE_URL": cacheURL}},
		{"act with its artifact server", map[string]string{"ACTIONS_RESULTS_URL": "http://127.0.0.1:34567/", "ACTIONS_CACHE_URL": "http://127.0.0.1:40000/", "GITHUB_SERVER_URL": "https://github.com"}},
		{"results URL only", map[string]string{"ACTIONS_RESULTS_URL": "http://127.0.0.1:34567/"}},
		{"GHES", map[string]string{"GITHUB_SERVER_URL": "https://ghe.example", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": "https://ghe.example/results/", "ACTIONS_CACHE_URL": "https://ghe.example/cache/"}},
		{"forced v2", map[string]string{"ACTIONS_CACHE_API_FORCE_VERSION": "v2", "ACTIONS_RESULTS_URL": results, "ACTIONS_CACHE_URL": cacheURL}},
		{"forced v1", map[string]string{"ACTIONS_CACHE_API_FORCE_VERSION": "v1", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": results, "ACTIONS_CACHE_URL": cacheURL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["ACTIONS_RUNTIME_TOKEN"] = "tok"
			getenv := func(k string) string { return tc.env[k] }
			wantV2, wantURL := runnerenv.CacheServiceV2(getenv), runnerenv.CacheServiceURL(getenv)

			filled := plan.AddGitHubRuntime([]cacheentry.Entry{{Type: cacheentry.TypeGHA, Attrs: map[string]string{"scope": "s"}}}, getenv)[0]
			if v2, url := buildkitGHAProtocol(filled.Attrs); v2 != wantV2 || url != wantURL {
				t.Errorf("BuildKit's gha backend: v2=%v at %q, want v2=%v at %q (attrs %v)", v2, url, wantV2, wantURL, filled.Attrs)
			}

			cfg := ghaClientConfig(client.CacheOptionsEntry{Type: filled.Type, Attrs: filled.Attrs}, getenv)
			url := cfg.CacheURL
			if cfg.ServiceV2 {
				url = cfg.ResultsURL
			}
			if cfg.ServiceV2 != wantV2 || url != wantURL {
				t.Errorf("bkcache's client: v2=%v at %q, want v2=%v at %q", cfg.ServiceV2, url, wantV2, wantURL)
			}
		})
	}
}
