package runnerenv

import "testing"

func TestCacheServiceV2(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing", nil, false},
		{"javascript action", map[string]string{"ACTIONS_CACHE_SERVICE_V2": "True", "ACTIONS_RESULTS_URL": "https://results/"}, true},
		{"flag false", map[string]string{"ACTIONS_CACHE_SERVICE_V2": "false", "ACTIONS_RESULTS_URL": "https://results/"}, false},
		{"container action: results URL only", map[string]string{"ACTIONS_RESULTS_URL": "https://results/", "ACTIONS_CACHE_URL": "https://cache/"}, true},
		{"v1 only", map[string]string{"ACTIONS_CACHE_URL": "https://cache/"}, false},
		{"GHES", map[string]string{"GITHUB_SERVER_URL": "https://ghe.corp.example", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": "https://r/"}, false},
		{"ghe.com tenant", map[string]string{"GITHUB_SERVER_URL": "https://acme.ghe.com", "ACTIONS_RESULTS_URL": "https://r/"}, true},
		{"loopback emulator", map[string]string{"GITHUB_SERVER_URL": "http://127.0.0.1:7071", "ACTIONS_RESULTS_URL": "http://127.0.0.1:7071/"}, true},
		{"forced v1", map[string]string{"ACTIONS_CACHE_API_FORCE_VERSION": "v1", "ACTIONS_CACHE_SERVICE_V2": "true"}, false},
		{"forced v2 on GHES", map[string]string{"ACTIONS_CACHE_API_FORCE_VERSION": "v2", "GITHUB_SERVER_URL": "https://ghe.corp.example"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CacheServiceV2(func(k string) string { return tc.env[k] }); got != tc.want {
				t.Fatalf("CacheServiceV2 = %v, want %v", got, tc.want)
			}
		})
	}
}
