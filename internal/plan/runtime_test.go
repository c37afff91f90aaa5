package plan

import (
	"slices"
	"testing"

	"github.com/bkcache/bkcache/internal/cacheentry"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestAddGitHubRuntime(t *testing.T) {
	const tok = "RUNTIME-TOKEN"
	tests := []struct {
		name string
		in   cacheentry.Entry
		env  map[string]string
		want map[string]string
	}{
		// Protocol and URLs follow @actions/cache (runnerenv.CacheServiceV2,
		// whose test cites the toolkit's config.ts); version is always set,
		// so BuildKit never guesses it from the URL.
		{"v2 signalled", cacheentry.Entry{Type: "gha", Attrs: map[string]string{"scope": "b"}},
			map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_CACHE_SERVICE_V2": "True", "ACTIONS_RESULTS_URL": "https://results/", "ACTIONS_CACHE_URL": "https://cache/"},
			map[string]string{"scope": "b", "token": tok, "version": "2", "url_v2": "https://results/", "url": "https://cache/"}},
		{"v1 runner (GHES)", cacheentry.Entry{Type: "gha", Attrs: map[string]string{}},
			map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_CACHE_URL": "https://ghes/cache/", "ACTIONS_RESULTS_URL": "https://ghes/results/", "GITHUB_SERVER_URL": "https://ghes.example"},
			map[string]string{"token": tok, "version": "1", "url": "https://ghes/cache/"}},
		{"flag set to false is still v2, as for the toolkit", cacheentry.Entry{Type: "gha", Attrs: map[string]string{}},
			map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_CACHE_SERVICE_V2": "false", "ACTIONS_RESULTS_URL": "https://results/"},
			map[string]string{"token": tok, "version": "2", "url_v2": "https://results/", "url": "https://results/"}},
		{"results URL only: v1 at the results URL", cacheentry.Entry{Type: "gha", Attrs: map[string]string{}},
			map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_RESULTS_URL": "https://results/"},
			map[string]string{"token": tok, "version": "1", "url": "https://results/"}},
		// What nektos/act sets: its artifact server as the results URL, its
		// v1 cache server as the cache URL, no flag.
		{"act: no flag, v1 at ACTIONS_CACHE_URL", cacheentry.Entry{Type: "gha", Attrs: map[string]string{}},
			map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_RESULTS_URL": "http://10.0.0.2:1/", "ACTIONS_CACHE_URL": "http://10.0.0.2:2/", "GITHUB_SERVER_URL": "https://github.com"},
			map[string]string{"token": tok, "version": "1", "url": "http://10.0.0.2:2/"}},
		{"forced v1", cacheentry.Entry{Type: "gha", Attrs: map[string]string{}},
			map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_CACHE_API_FORCE_VERSION": "v1", "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": "https://results/", "ACTIONS_CACHE_URL": "https://cache/"},
			map[string]string{"token": tok, "version": "1", "url": "https://cache/"}},
		{"user values kept", cacheentry.Entry{Type: "gha", Attrs: map[string]string{"token": "mine", "url": "http://127.0.0.1:1/", "version": "1"}},
			map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_CACHE_SERVICE_V2": "1", "ACTIONS_RESULTS_URL": "https://results/"},
			map[string]string{"token": "mine", "url": "http://127.0.0.1:1/", "version": "1"}},
		{"user url_v2 kept", cacheentry.Entry{Type: "gha", Attrs: map[string]string{"url_v2": "http://127.0.0.1:2/"}},
			map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_CACHE_SERVICE_V2": "true", "ACTIONS_RESULTS_URL": "https://results/"},
			map[string]string{"token": tok, "version": "2", "url_v2": "http://127.0.0.1:2/", "url": "https://results/"}},
		{"user url_v2 asks for v2 on a v1 runner", cacheentry.Entry{Type: "gha", Attrs: map[string]string{"url_v2": "http://127.0.0.1:2/"}},
			map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_CACHE_URL": "https://cache/"},
			map[string]string{"token": tok, "version": "2", "url_v2": "http://127.0.0.1:2/", "url": "https://cache/"}},
		{"no runtime", cacheentry.Entry{Type: "gha", Attrs: map[string]string{}}, nil, map[string]string{}},
		{"other types untouched", cacheentry.Entry{Type: "registry", Attrs: map[string]string{"ref": "a/b"}},
			map[string]string{"ACTIONS_RUNTIME_TOKEN": tok}, map[string]string{"ref": "a/b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.in.Clone()
			got := AddGitHubRuntime([]cacheentry.Entry{tt.in}, env(tt.env))
			if len(got) != 1 || !got[0].Equal(cacheentry.Entry{Type: tt.in.Type, Attrs: tt.want}) {
				t.Fatalf("got %#v, want attrs %v", got, tt.want)
			}
			if !tt.in.Equal(orig) {
				t.Error("input entry was modified")
			}
			if err := got[0].Validate(cacheentry.Export); err != nil {
				t.Errorf("filled entry does not validate: %v", err)
			}
			secrets := cacheentry.Secrets(got)
			if v := got[0].Attrs["token"]; v != "" && !slices.Contains(secrets, v) {
				t.Errorf("Secrets() = %q lacks the token", secrets)
			}
		})
	}
}

func TestSplitInactive(t *testing.T) {
	in := []cacheentry.Entry{
		{Type: "gha", Attrs: map[string]string{"token": "t", "url": "https://u/"}},
		{Type: "gha", Attrs: map[string]string{"token": "t", "url_v2": "https://u/"}},
		{Type: "gha", Attrs: map[string]string{"url": "https://u/"}},
		{Type: "gha", Attrs: map[string]string{"token": "t"}},
		{Type: "local", Attrs: map[string]string{"dest": "/c"}},
	}
	active, inactive := SplitInactive(in)
	if len(active) != 3 || len(inactive) != 2 || active[2].Type != "local" {
		t.Fatalf("active %v, inactive %v", active, inactive)
	}
}
