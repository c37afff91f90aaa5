package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestActionPlanMounts is the dry run's account of the Dockerfile's cache
// mounts: which are carried, from where and to where, under the build
// cache's scopes and trust rules.
func TestActionPlanMounts(t *testing.T) {
	ctxDir := t.TempDir()
	df := "FROM busybox\nRUN --mount=type=cache,id=dl,target=/dl,sharing=locked true\n" +
		"RUN --mount=type=cache,target=/home/u/.cache,uid=1000 true\nRUN --mount=type=cache,target=$X true\n" +
		"ARG TARGETARCH\nRUN --mount=type=cache,id=c-$TARGETARCH,target=/c true\n"
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	cacheDir := t.TempDir()
	// The runtime token writes the job's ref, as GitHub's does.
	ghaVars := map[string]string{"ACTIONS_RUNTIME_TOKEN": mintToken(t, "refs/heads/feature/Login_Form"), "ACTIONS_RESULTS_URL": "http://127.0.0.1:1/", "ACTIONS_CACHE_SERVICE_V2": "true"}
	for _, tc := range []struct {
		name, event, ref, payload string
		inputs                    map[string]string
		vars                      map[string]string
		want, notWant             []string
	}{
		{
			name: "push saves to its own scope", event: "push", ref: "refs/heads/feature/Login_Form", payload: "push_branch.json",
			inputs: map[string]string{"cache": "type=local,dest=" + cacheDir},
			want: []string{
				"cache mount dl (/dl) sharing=locked: restore from local " + cacheDir + "/buildkit_feature-login-form--d51d2737.mounts",
				", then local " + cacheDir + "/buildkit_develop.mounts; save to local " + cacheDir + "/buildkit_feature-login-form--d51d2737.mounts\n",
				"cache mount /home/u/.cache uid=1000 gid=0 mode=0755: restore from",
				"cache mount $X (stage stage-0) not carried: uses $X, which no ARG or ENV of the Dockerfile sets",
				"cache mount /c (stage stage-0) not carried: uses $TARGETARCH, and the builder's platform is not known yet",
			},
		},
		{
			name: "a fork's pull request restores but never saves", event: "pull_request", ref: "refs/pull/17/merge", payload: "pull_request_fork.json",
			inputs:  map[string]string{"cache": "type=local,dest=" + cacheDir},
			want:    []string{"cache mount dl (/dl) sharing=locked: restore from", "; no save: this event exports no cache"},
			notWant: []string{"save to"},
		},
		{
			name: "inline alone without the runtime", event: "push", ref: "refs/heads/feature/Login_Form", payload: "push_branch.json",
			inputs:  map[string]string{"cache": "type=inline", "tags": "example.com/app:1"},
			want:    []string{"no cache store carries them (inline does not)"},
			notWant: []string{"cache mount dl"},
		},
		{
			name: "inline alone with the runtime uses gha", event: "push", ref: "refs/heads/feature/Login_Form", payload: "push_branch.json",
			inputs: map[string]string{"cache": "type=inline", "tags": "example.com/app:1"},
			vars:   ghaVars,
			want:   []string{"cache mount dl (/dl) sharing=locked: restore from gha scope buildkit; save to gha scope buildkit"},
		},
		{
			name: "inline alone with a token that writes another ref saves nothing", event: "push", ref: "refs/heads/feature/Login_Form", payload: "push_branch.json",
			inputs:  map[string]string{"cache": "type=inline", "tags": "example.com/app:1"},
			vars:    map[string]string{"ACTIONS_RUNTIME_TOKEN": mintToken(t, "refs/heads/develop"), "ACTIONS_RESULTS_URL": "http://127.0.0.1:1/"},
			want:    []string{"restore from gha scope buildkit; no save: the gha exporter writes refs/heads/develop"},
			notWant: []string{"save to"},
		},
		{
			name: "a registry cache line carries them as artifacts", event: "push", ref: "refs/heads/feature/Login_Form", payload: "push_branch.json",
			inputs: map[string]string{"cache": "type=registry,ref=example.com/app-cache"},
			want: []string{"cache mount dl (/dl) sharing=locked: restore from registry example.com/app-cache:buildkit_feature-login-form--d51d2737-mount-<mount>, " +
				"then registry example.com/app-cache:buildkit_develop-mount-<mount>; save to registry example.com/app-cache:buildkit_feature-login-form--d51d2737-mount-<mount>"},
		},
		{
			name: "a list of ids", event: "push", ref: "refs/heads/feature/Login_Form", payload: "push_branch.json",
			inputs:  map[string]string{"cache": "type=local,dest=" + cacheDir, "cache-mounts": "dl, nosuch"},
			want:    []string{"cache mount dl (/dl) sharing=locked", `input cache-mounts names "nosuch"`},
			notWant: []string{"cache mount /home/u/.cache"},
		},
		{
			name: "no-cache", event: "push", ref: "refs/heads/feature/Login_Form", payload: "push_branch.json",
			inputs:  map[string]string{"cache": "type=local,dest=" + cacheDir, "no-cache": "true"},
			want:    []string{"no-cache: cache mounts are neither restored nor saved"},
			notWant: []string{"cache mount dl"},
		},
		{
			name: "none", event: "push", ref: "refs/heads/feature/Login_Form", payload: "push_branch.json",
			inputs:  map[string]string{"cache": "type=local,dest=" + cacheDir, "cache-mounts": "none"},
			notWant: []string{"cache mount"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.inputs["context"] = ctxDir
			tc.inputs["dry-run"] = "true"
			r := newRunnerEnv(t, tc.event, tc.ref, tc.payload, tc.inputs)
			for k, v := range tc.vars {
				r.vars[k] = v
			}
			code, stdout, _ := r.run(t)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("log lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(stdout, w) {
					t.Errorf("log has %q:\n%s", w, stdout)
				}
			}
		})
	}
}
