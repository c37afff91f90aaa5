package ghacache

import (
	"testing"
)

func TestConfigFromEnv(t *testing.T) {
	const res, cache = "https://results-receiver.actions.githubusercontent.com/", "https://artifactcache.actions.githubusercontent.com/abc/"
	tests := []struct {
		name   string
		env    map[string]string
		wantV2 bool
		wantOK bool
	}{
		{"javascript action on github.com", map[string]string{
			"ACTIONS_CACHE_SERVICE_V2": "True", "ACTIONS_RESULTS_URL": res, "ACTIONS_CACHE_URL": cache, "ACTIONS_RUNTIME_TOKEN": "t",
		}, true, true},
		// As @actions/cache (runnerenv.CacheServiceV2): no flag, no v2.
		{"no V2 flag, results URL present", map[string]string{
			"ACTIONS_RESULTS_URL": res, "ACTIONS_CACHE_URL": cache, "ACTIONS_RUNTIME_TOKEN": "t",
		}, false, true},
		{"no V2 flag, no cache URL: v1 at the results URL", map[string]string{
			"ACTIONS_RESULTS_URL": res, "ACTIONS_RUNTIME_TOKEN": "t",
		}, false, true},
		{"old runner: cache URL only", map[string]string{
			"ACTIONS_CACHE_URL": cache, "ACTIONS_RUNTIME_TOKEN": "t",
		}, false, true},
		{"GHES ignores the V2 flag", map[string]string{
			"GITHUB_SERVER_URL": "https://ghes.example.com", "ACTIONS_CACHE_SERVICE_V2": "true",
			"ACTIONS_RESULTS_URL": res, "ACTIONS_CACHE_URL": cache, "ACTIONS_RUNTIME_TOKEN": "t",
		}, false, true},
		{"ghe.com is not GHES", map[string]string{
			"GITHUB_SERVER_URL": "https://octo.ghe.com", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": res, "ACTIONS_RUNTIME_TOKEN": "t",
		}, true, true},
		{"loopback server URL is GHES, as for the toolkit", map[string]string{
			"GITHUB_SERVER_URL": "http://127.0.0.1:8080", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": "http://127.0.0.1:8080/", "ACTIONS_RUNTIME_TOKEN": "t",
		}, false, true},
		{"force v1", map[string]string{
			"ACTIONS_CACHE_API_FORCE_VERSION": "v1", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": res, "ACTIONS_CACHE_URL": cache, "ACTIONS_RUNTIME_TOKEN": "t",
		}, false, true},
		{"force v2 on GHES", map[string]string{
			"ACTIONS_CACHE_API_FORCE_VERSION": "v2", "GITHUB_SERVER_URL": "https://ghes.example.com", "ACTIONS_RESULTS_URL": res, "ACTIONS_RUNTIME_TOKEN": "t",
		}, true, true},
		{"no token", map[string]string{"ACTIONS_RESULTS_URL": res, "ACTIONS_CACHE_SERVICE_V2": "true"}, true, false},
		{"v2 chosen but no results URL", map[string]string{"ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_CACHE_URL": cache, "ACTIONS_RUNTIME_TOKEN": "t"}, true, false},
		{"nothing", map[string]string{}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok := ConfigFromEnv(func(k string) string { return tt.env[k] })
			if cfg.ServiceV2 != tt.wantV2 || ok != tt.wantOK {
				t.Errorf("ConfigFromEnv: v2=%v ok=%v, want v2=%v ok=%v", cfg.ServiceV2, ok, tt.wantV2, tt.wantOK)
			}
			if ok {
				if _, err := NewClient(cfg); err != nil {
					t.Errorf("NewClient: %v", err)
				}
			}
		})
	}
}

func TestBuildKitKeys(t *testing.T) {
	// Golden values: sha256 computed with sha256sum, matching
	// buildkit cache/remotecache/gha/gha.go indexKey and go-actions-cache version().
	if got, want := BuildKitVersion(), "693bb7016429d80366022f036f84856888c9f13e00145f5f6f4dce303a38d6f2"; got != want {
		t.Errorf("BuildKitVersion() = %s, want %s", got, want)
	}
	tests := []struct{ scope, ref, want string }{
		{"buildkit", "refs/heads/main", "index-buildkit-1-f921bd05"},
		{"app-linux-arm64", "refs/pull/42/merge", "index-app-linux-arm64-1-e8fd0ad9"},
	}
	for _, tt := range tests {
		if got := IndexKey(tt.scope, tt.ref); got != tt.want {
			t.Errorf("IndexKey(%q, %q) = %q, want %q", tt.scope, tt.ref, got, tt.want)
		}
	}
	if got := BlobKey("sha256:abc"); got != "buildkit-blob-1-sha256:abc" {
		t.Errorf("BlobKey = %q", got)
	}
	for _, tt := range []struct {
		key string
		n   int
		ok  bool
	}{
		{"index-x-1-aa#3", 3, true}, {"index-x-1-aa#", 0, false}, {"index-x-1-aa-sig#3", 0, false}, {"index-x-1-aa#3x", 0, false},
	} {
		if n, ok := indexCounter(tt.key, "index-x-1-aa"); n != tt.n || ok != tt.ok {
			t.Errorf("indexCounter(%q) = %d, %v", tt.key, n, ok)
		}
	}
}
