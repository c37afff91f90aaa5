package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/testenv"
)

// mountsDockerfile has two cache mounts: one with id= and sharing=locked,
// one with uid=1000 used under a non-root USER. Each RUN records whether
// it found its earlier work ("warm") and what the mount holds; the RUNID
// build argument makes both RUN steps run on every build that changes it.
const mountsDockerfile = `FROM %s
ARG RUNID
ARG CLEAR
RUN --mount=type=cache,id=downloads,target=/var/cache/dl,sharing=locked \
    if [ -f /var/cache/dl/work ]; then echo warm > /dl-state; else echo cold > /dl-state; \
      echo downloaded > /var/cache/dl/work; mkdir /var/cache/dl/private; chmod 0700 /var/cache/dl/private; \
      ln -s work /var/cache/dl/link; fi; \
    cat /var/cache/dl/work > /dl-content; stat -c '%%a' /var/cache/dl/private > /dl-mode; \
    readlink /var/cache/dl/link > /dl-link; echo $RUNID; \
    if [ -n "$CLEAR" ]; then rm -rf /var/cache/dl/*; fi
USER 1000
RUN --mount=type=cache,target=/tmp/usercache,uid=1000 \
    if [ -f /tmp/usercache/built ]; then echo warm > /tmp/user-state; else echo cold > /tmp/user-state; \
      echo compiled > /tmp/usercache/built; fi; \
    stat -c '%%u:%%g %%a' /tmp/usercache/built > /tmp/user-owner; echo $RUNID
`

// TestE2ECacheMountsOnFreshBuilders runs the action twice for a push, each
// time on a fresh buildkitd (a fresh runner): the second build finds both
// cache mounts filled with the first build's work, with owners, modes and
// the symlink intact; a third, fully cached build saves nothing.
func TestE2ECacheMountsOnFreshBuilders(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	helper := testenv.StaticBkcache(t)
	for _, tc := range []struct {
		store string
		need  []string
		line  func(dir string) string
	}{
		{"local", nil, func(dir string) string { return "type=local,dest=" + filepath.Join(dir, "cache") }},
		{"s3", []string{"s3"}, func(string) string {
			return fmt.Sprintf("type=s3,bucket=%s,region=%s,endpoint_url=%s,use_path_style=true,access_key_id=%s,secret_access_key=%s,prefix=mounts-%s/",
				env.S3Bucket, env.S3Region, env.S3Endpoint, env.S3AccessKey, env.S3SecretKey, testenv.RandomHex(6))
		}},
		{"azblob", []string{"azure"}, func(string) string {
			return fmt.Sprintf("type=azblob,account_url=%s,account_name=%s,secret_access_key=%s,prefix=mounts-%s/",
				env.AzureAccountURL, env.AzureAccountName, env.AzureAccountKey, testenv.RandomHex(6))
		}},
		{"registry", []string{"registry"}, func(string) string {
			return "type=registry,ref=" + env.Registry + "/bkcache-e2e/mounts-" + testenv.RandomHex(6)
		}},
		{"gha", []string{"gha"}, func(string) string { return "type=gha" }},
	} {
		t.Run(tc.store, func(t *testing.T) {
			env := testenv.Require(t, append([]string{"buildkit"}, tc.need...)...)
			ctxDir := t.TempDir()
			if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(fmt.Sprintf(mountsDockerfile, env.BaseImage)), 0o644); err != nil {
				t.Fatal(err)
			}
			line := tc.line(t.TempDir())
			scope := "mounts-" + testenv.RandomHex(6)
			var outputs map[string]string // the last build's
			build := func(builder, buildArgs string) (out, summary, log string) {
				t.Helper()
				out = t.TempDir()
				r := newRunnerEnv(t, "push", "refs/heads/feature/Login_Form", "push_branch.json", map[string]string{
					"context": ctxDir, "builder": builder, "cache": line, "cache-scope": scope,
					"build-args": buildArgs, "outputs": "type=local,dest=" + out,
				})
				r.vars["BKCACHE_MOUNT_HELPER"] = helper
				if tc.store == "gha" {
					for k, v := range ghaRunnerVars(t, env, "refs/heads/feature/Login_Form") {
						r.vars[k] = v
					}
				}
				code, log, outs := r.run(t)
				if code != 0 {
					t.Fatalf("action exited %d:\n%s", code, log)
				}
				outputs = outs
				sum, err := os.ReadFile(r.summary)
				if err != nil {
					t.Fatal(err)
				}
				return out, string(sum), log
			}
			read := func(dir, name string) string { return readExported(t, dir, name) }

			cold, sum, log := build(testenv.NewBuildkitd(t), "RUNID="+testenv.RandomHex(6))
			if read(cold, "dl-state") != "cold" || read(cold, "tmp/user-state") != "cold" {
				t.Fatalf("first build found warm mounts on a fresh builder")
			}
			if strings.Count(sum, "saved to ") != 2 {
				t.Fatalf("first build did not save both mounts; summary:\n%s\nlog:\n%s", sum, log)
			}

			fresh := testenv.NewBuildkitd(t)
			warmID := "RUNID=" + testenv.RandomHex(6)
			warm, sum, log := build(fresh, warmID)
			for name, want := range map[string]string{
				"dl-state": "warm", "dl-content": "downloaded", "dl-mode": "700", "dl-link": "work",
				"tmp/user-state": "warm", "tmp/user-owner": "1000:0 644",
			} {
				if got := read(warm, name); got != want {
					t.Errorf("%s = %q, want %q\nsummary:\n%s\nlog:\n%s", name, got, want, sum, log)
				}
			}
			if strings.Count(sum, "restored from ") != 2 {
				t.Errorf("second build summary does not name the restores:\n%s", sum)
			}

			// The same build again is fully cached: neither mount changed.
			_, sum, _ = build(fresh, warmID)
			if n := strings.Count(sum, "not saved: every step that uses it was cached"); n != 2 {
				t.Errorf("an all-cached build saved mounts again:\n%s", sum)
			}

			// So is it on a fresh builder, which then needs no mount: the
			// build restores none (no helper build ran), and each RUN step
			// was a hit from the build cache. The second build above, whose
			// steps ran, restored both before they ran (they found "warm").
			_, sum, log = build(testenv.NewBuildkitd(t), warmID)
			if n := strings.Count(sum, ": not restored: not needed;"); n != 2 || strings.Contains(sum, "restored from ") {
				t.Errorf("an all-cached build on a fresh builder restored mounts:\n%s\nlog:\n%s", sum, log)
			}
			if outputs["cache-hits"] != outputs["cache-steps"] || outputs["cache-steps"] == "0" {
				t.Errorf("all-cached build on a fresh builder: %s of %s steps cached", outputs["cache-hits"], outputs["cache-steps"])
			}

			// A build that empties a mount does not replace its archive: a
			// fresh builder still gets the full one.
			_, sum, _ = build(fresh, "RUNID="+testenv.RandomHex(6)+"\nCLEAR=1")
			if !strings.Contains(sum, "downloads: kept the builder's own contents") || !strings.Contains(sum, "not saved: it is empty") {
				t.Errorf("emptied mount:\n%s", sum)
			}
			again, _, _ := build(testenv.NewBuildkitd(t), "RUNID="+testenv.RandomHex(6))
			if got := read(again, "dl-state"); got != "warm" {
				t.Errorf("after an emptied save, a fresh builder found the mount %s", got)
			}
		})
	}
}

// ghaRunnerVars are the runtime variables of a job on ref, with a token the
// test environment's gha emulator accepts.
func ghaRunnerVars(t *testing.T, e testenv.Env, ref string) map[string]string {
	t.Helper()
	secret, err := os.ReadFile(os.Getenv("BKCACHE_TEST_GHA_SECRET_FILE"))
	if err != nil {
		t.Fatalf("reading the gha emulator secret: %v", err)
	}
	tok, err := emulator.MintToken(bytes.TrimSpace(secret), emulator.TokenOptions{Repo: "bkcache/mounts", Write: ref})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_RESULTS_URL": e.GHAURL, "ACTIONS_CACHE_SERVICE_V2": "true"}
}

// platformMountsDockerfile keys its cache mount by TARGETPLATFORM, as
// mastodon's Dockerfile does, so a two-platform build has two caches.
const platformMountsDockerfile = `ARG BASE
FROM ${BASE}
ARG TARGETPLATFORM
ARG RUNID
RUN --mount=type=cache,id=dl-${TARGETPLATFORM},target=/var/cache/dl,sharing=locked \
    if [ -f /var/cache/dl/platform ]; then echo warm > /state; else echo cold > /state; \
      echo "$TARGETPLATFORM" > /var/cache/dl/platform; fi; \
    cat /var/cache/dl/platform > /cached-platform; echo $RUNID
`

// TestE2ECacheMountsDockerContainerTwoPlatforms runs the action on the
// docker-container builder that setup-buildx-action makes, for
// linux/amd64 and linux/arm64 (under QEMU) in one build: each platform's
// mount is saved, and a builder without them gets each one back. A new
// BUILDKIT_CACHE_MOUNT_NS stands in for a fresh builder: the builder is
// shared with other tests, so it is not pruned.
func TestE2ECacheMountsDockerContainerTwoPlatforms(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "builders")
	for k, v := range map[string]string{"DOCKER_HOST": env.DockerHost, "DOCKER_CONFIG": env.DockerConfig, "DOCKER_CONTEXT": "", "BUILDKIT_HOST": "", "BUILDX_BUILDER": "", "BUILDX_CONFIG": ""} {
		t.Setenv(k, v)
	}
	helper := testenv.StaticBkcache(t)
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(platformMountsDockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := "type=local,dest=" + filepath.Join(t.TempDir(), "cache")
	scope := "mounts-" + testenv.RandomHex(6)
	build := func(ns string, platforms string) (out, summary, log string) {
		t.Helper()
		out = t.TempDir()
		r := newRunnerEnv(t, "push", "refs/heads/feature/Login_Form", "push_branch.json", map[string]string{
			"context": ctxDir, "builder": env.BuildxBuilder, "cache": cache, "cache-scope": scope,
			"platforms":  platforms,
			"build-args": "BASE=" + env.MultiBaseImage + "\nRUNID=" + testenv.RandomHex(6) + "\nBUILDKIT_CACHE_MOUNT_NS=" + ns,
			"outputs":    "type=local,dest=" + out,
		})
		for _, k := range []string{"DOCKER_HOST", "DOCKER_CONFIG"} {
			r.vars[k] = os.Getenv(k)
		}
		r.vars["BKCACHE_MOUNT_HELPER"] = helper
		code, log, _ := r.run(t)
		if code != 0 {
			t.Fatalf("action exited %d:\n%s", code, log)
		}
		sum, err := os.ReadFile(r.summary)
		if err != nil {
			t.Fatal(err)
		}
		return out, string(sum), log
	}
	read := func(dir, name string) string { return readExported(t, dir, name) }
	platforms := []string{"linux/amd64", "linux/arm64"}

	cold, sum, log := build("ns-"+testenv.RandomHex(6), "linux/amd64,linux/arm64")
	for _, p := range platforms {
		dir := strings.ReplaceAll(p, "/", "_")
		if got := read(cold, dir+"/state"); got != "cold" {
			t.Fatalf("%s: first build found the mount %s", p, got)
		}
		if !strings.Contains(sum, "dl-"+p+": ") {
			t.Errorf("summary does not list the mount of %s:\n%s", p, sum)
		}
	}
	if n := strings.Count(sum, "saved to "); n != 2 {
		t.Fatalf("first build saved %d mounts, want one per platform; summary:\n%s\nlog:\n%s", n, sum, log)
	}

	warm, sum, log := build("ns-"+testenv.RandomHex(6), "linux/amd64,linux/arm64")
	for _, p := range platforms {
		dir := strings.ReplaceAll(p, "/", "_")
		if got := read(warm, dir+"/state"); got != "warm" {
			t.Errorf("%s: second build found the mount %s\nsummary:\n%s\nlog:\n%s", p, got, sum, log)
		}
		// Each platform got its own cache back, not the other's.
		if got := read(warm, dir+"/cached-platform"); got != p {
			t.Errorf("%s: the mount holds %s's work", p, got)
		}
	}
	if n := strings.Count(sum, "restored from "); n != 2 {
		t.Errorf("second build restored %d mounts, want 2:\n%s", n, sum)
	}

	// Without platforms the target is the builder's own platform, known
	// only once bkcache connects: the mount is found then, saved, and
	// restored. (The build cache scope, and so the mounts', is another
	// one without platforms.)
	_, sum, log = build("ns-"+testenv.RandomHex(6), "")
	if !strings.Contains(sum, "dl-linux/amd64: nothing saved yet; saved to ") {
		t.Errorf("a build for the builder's platform did not save its mount:\n%s\nlog:\n%s", sum, log)
	}
	one, sum, log := build("ns-"+testenv.RandomHex(6), "")
	if got := read(one, "state"); got != "warm" {
		t.Errorf("a build for the builder's platform found the mount %s\nsummary:\n%s\nlog:\n%s", got, sum, log)
	}
	if n := strings.Count(sum, "restored from "); n != 1 || !strings.Contains(sum, "dl-linux/amd64: ") {
		t.Errorf("a build for the builder's platform restored %d mounts:\n%s", n, sum)
	}
}

// readExported is a file a build exported to dir, trimmed.
func readExported(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
