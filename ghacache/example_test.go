package ghacache_test

import (
	"fmt"

	"github.com/bkcache/bkcache/ghacache"
)

// A JavaScript action on github.com gets ACTIONS_CACHE_SERVICE_V2 from the
// runner, so the client speaks v2 to ACTIONS_RESULTS_URL, as @actions/cache.
func ExampleConfigFromEnv() {
	env := map[string]string{
		"ACTIONS_CACHE_SERVICE_V2": "true",
		"ACTIONS_RESULTS_URL":      "https://results-receiver.actions.githubusercontent.com/",
		"ACTIONS_CACHE_URL":        "https://artifactcache.actions.githubusercontent.com/x/",
		"ACTIONS_RUNTIME_TOKEN":    "token",
		"GITHUB_SERVER_URL":        "https://github.com",
	}
	cfg, ok := ghacache.ConfigFromEnv(func(k string) string { return env[k] })
	fmt.Println(ok, cfg.ServiceV2)
	// Output: true true
}

// The key under which BuildKit's type=gha exporter keeps the cache index of
// scope "buildkit" written from main; each export adds "#n".
func ExampleIndexKey() {
	fmt.Println(ghacache.IndexKey("buildkit", "refs/heads/main"))
	// Output: index-buildkit-1-f921bd05
}
