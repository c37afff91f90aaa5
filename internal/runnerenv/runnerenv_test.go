package runnerenv

import "testing"

// The rule under test is @actions/cache's, actions/toolkit
// packages/cache/src/internal/config.ts:
//
//	isGhes(): host of GITHUB_SERVER_URL (default https://github.com), upper-cased,
//	          is not GITHUB.COM, does not end in .GHE.COM, does not end in .LOCALHOST
//	getCacheServiceVersion(): isGhes() ? 'v1' : (ACTIONS_CACHE_SERVICE_V2 ? 'v2' : 'v1')
//	getCacheServiceURL(): v1 → ACTIONS_CACHE_URL || ACTIONS_RESULTS_URL; v2 → ACTIONS_RESULTS_URL
//
// plus go-actions-cache's ACTIONS_CACHE_API_FORCE_VERSION, which wins.
func TestCacheServiceV2(t *testing.T) {
	const results, cache = "https://results/", "https://cache/"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantV2  bool
		wantURL string
	}{
		{"nothing", nil, false, ""},
		{"javascript action on github.com",
			map[string]string{"ACTIONS_CACHE_SERVICE_V2": "True", "ACTIONS_RESULTS_URL": results, "ACTIONS_CACHE_URL": cache}, true, results},
		// JavaScript: any non-empty string is truthy.
		{"flag false is still set", map[string]string{"ACTIONS_CACHE_SERVICE_V2": "false", "ACTIONS_RESULTS_URL": results}, true, results},
		{"flag empty", map[string]string{"ACTIONS_CACHE_SERVICE_V2": "", "ACTIONS_RESULTS_URL": results, "ACTIONS_CACHE_URL": cache}, false, cache},
		// nektos/act sets ACTIONS_RESULTS_URL to its artifact server and
		// ACTIONS_CACHE_URL to its v1 cache server, and no flag.
		{"act: results URL without the flag",
			map[string]string{"ACTIONS_RESULTS_URL": "http://10.0.0.2:34567/", "ACTIONS_CACHE_URL": "http://10.0.0.2:45678/", "GITHUB_SERVER_URL": "https://github.com"},
			false, "http://10.0.0.2:45678/"},
		{"v1 without ACTIONS_CACHE_URL falls back to the results URL", map[string]string{"ACTIONS_RESULTS_URL": results}, false, results},
		{"v1 only", map[string]string{"ACTIONS_CACHE_URL": cache}, false, cache},
		{"GHES never v2", map[string]string{"GITHUB_SERVER_URL": "https://ghe.corp.example", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": results, "ACTIONS_CACHE_URL": cache}, false, cache},
		{"ghe.com tenant", map[string]string{"GITHUB_SERVER_URL": "https://acme.ghe.com", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": results}, true, results},
		{"*.localhost", map[string]string{"GITHUB_SERVER_URL": "http://gh.localhost:3000", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": results}, true, results},
		{"upper-case github.com with a port", map[string]string{"GITHUB_SERVER_URL": "https://GitHub.COM:443", "ACTIONS_CACHE_SERVICE_V2": "1", "ACTIONS_RESULTS_URL": results}, true, results},
		// Only the suffix .localhost is exempt: a bare localhost or a
		// loopback address is GHES to the toolkit.
		{"bare localhost is GHES", map[string]string{"GITHUB_SERVER_URL": "http://localhost:3000", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": results, "ACTIONS_CACHE_URL": cache}, false, cache},
		{"loopback is GHES", map[string]string{"GITHUB_SERVER_URL": "http://127.0.0.1:7071", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": results, "ACTIONS_CACHE_URL": cache}, false, cache},
		{"forced v1", map[string]string{"ACTIONS_CACHE_API_FORCE_VERSION": "v1", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": results, "ACTIONS_CACHE_URL": cache}, false, cache},
		{"forced v2 on GHES", map[string]string{"ACTIONS_CACHE_API_FORCE_VERSION": "V2", "GITHUB_SERVER_URL": "https://ghe.corp.example", "ACTIONS_RESULTS_URL": results}, true, results},
		{"forced v2 without the flag", map[string]string{"ACTIONS_CACHE_API_FORCE_VERSION": "v2", "ACTIONS_RESULTS_URL": results, "ACTIONS_CACHE_URL": cache}, true, results},
		{"unknown force value is ignored", map[string]string{"ACTIONS_CACHE_API_FORCE_VERSION": "v3", "ACTIONS_RESULTS_URL": results, "ACTIONS_CACHE_URL": cache}, false, cache},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			if got := CacheServiceV2(getenv); got != tc.wantV2 {
				t.Errorf("CacheServiceV2 = %v, want %v", got, tc.wantV2)
			}
			if got := CacheServiceURL(getenv); got != tc.wantURL {
				t.Errorf("CacheServiceURL = %q, want %q", got, tc.wantURL)
			}
		})
	}
}

func TestIsGHES(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"", false},
		{"https://github.com", false},
		{"https://github.com/", false},
		{"https://octo.ghe.com", false},
		{"http://app.localhost", false},
		{"https://ghe.corp.example", true},
		{"https://github.com.evil.example", true},
		{"https://notgithub.com", true},
		{"http://localhost", true},
		{"http://127.0.0.1:8080", true},
		{"not a url", false}, // the toolkit throws; bkcache assumes github.com
	} {
		if got := IsGHES(tc.url); got != tc.want {
			t.Errorf("IsGHES(%q) = %v, want %v", tc.url, got, tc.want)
		}
	}
}
