package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	ghaVars := map[string]string{"ACTIONS_RUNTIME_TOKEN": "tok", "ACTIONS_RESULTS_URL": "http://127.0.0.1:1/", "ACTIONS_CACHE_SERVICE_V2": "true"}
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

// The download of an archive is bounded: a store's object can be any size.
func TestSpoolLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int
		limit int64
		err   error
	}{
		{"under", 10, 10, nil},
		{"over", 11, 10, errSpoolLimit},
		{"no limit", 1 << 16, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a")
			n, err := spool(path, io.NopCloser(bytes.NewReader(make([]byte, tc.size))), tc.limit)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			// Never more than one byte past the limit reaches the disk.
			if fi, _ := os.Stat(path); tc.limit > 0 && fi.Size() > tc.limit+1 {
				t.Errorf("wrote %d bytes, read %d", fi.Size(), n)
			}
		})
	}
	if got := spoolLimit(2 << 30); got <= 2<<30 || got > 3<<30 {
		t.Errorf("spoolLimit(2GiB) = %d", got)
	}
}

func TestHelperTimeout(t *testing.T) {
	if a, b := helperTimeout(0), helperTimeout(2<<30); a < time.Minute || b <= a || b > time.Hour {
		t.Errorf("timeouts %s for nothing, %s for 2GiB", a, b)
	}
	ctx := context.Background()
	err := helperErr(ctx, fmt.Errorf("solve: %w", context.DeadlineExceeded), time.Minute)
	if !strings.Contains(err.Error(), "did not finish in 1m0s") {
		t.Errorf("err = %v", err)
	}
	// The job's own cancellation is not a helper timeout.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := helperErr(cctx, context.Canceled, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}
