package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/testenv"
)

// TestE2ESharedBucket: two repositories whose workflows name the same S3
// bucket, with no prefix, never share a cache location. A build of the
// second repository on a fresh builder hits nothing of what the first
// wrote. The cache a version before the repository prefix wrote (at the
// bucket's root) is imported once, read-only, by the first build after
// upgrading.
func TestE2ESharedBucket(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "s3")
	id := testenv.RandomHex(6)
	line := fmt.Sprintf("type=s3,bucket=%s,region=%s,endpoint_url=%s,use_path_style=true,access_key_id=%s,secret_access_key=%s",
		env.S3Bucket, env.S3Region, env.S3Endpoint, env.S3AccessKey, env.S3SecretKey)
	scopeName := "shared-" + id // the names at the bucket's root are this test's own
	ctxDir := t.TempDir()
	content := func(nonce string) {
		df := fmt.Sprintf("FROM %s\nRUN echo %s > /n\nRUN cat /n > /m\n", env.BaseImage, nonce)
		if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// build runs the action for a push to the default branch (trunk) of
	// repository ("" as before the prefix: no GITHUB_REPOSITORY) on a fresh
	// builder and returns its hits and log.
	build := func(repository string) (cached, steps int, log string) {
		t.Helper()
		r := newRunnerEnv(t, "push", "refs/heads/trunk", "push_default_trunk.json", map[string]string{
			"context": ctxDir, "builder": testenv.NewBuildkitd(t), "cache": line, "cache-scope": scopeName,
		})
		if repository == "" {
			delete(r.vars, "GITHUB_REPOSITORY")
		} else {
			r.vars["GITHUB_REPOSITORY"] = repository
		}
		code, log, outputs := r.run(t)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", repository, code, log)
		}
		cached, _ = strconv.Atoi(outputs["cache-hits"])
		steps, _ = strconv.Atoi(outputs["cache-steps"])
		return cached, steps, log
	}
	one, two := "bkcache-e2e-"+id+"/one", "bkcache-e2e-"+id+"/two"

	content("A-" + id)
	if cached, steps, log := build(""); steps != 2 || cached != 0 {
		t.Fatalf("the old version's build: %d of %d cached, want 0 of 2\n%s", cached, steps, log)
	}
	testenv.S3Has(t, env, "manifests/"+scopeName+"_trunk")

	// The first build after upgrading imports the old location.
	cached, steps, log := build(one)
	if steps != 2 || cached != 2 {
		t.Errorf("first build after upgrading: %d of %d cached, want all from the old location\n%s", cached, steps, log)
	}
	if !strings.Contains(log, "also importing type=s3,") || !strings.Contains(log, "read-only") {
		t.Errorf("the log does not say the old location is imported\n%s", log)
	}
	testenv.S3Has(t, env, one+"/manifests/"+scopeName+"_trunk")

	// New content, built by one, then by two: two finds nothing of one's.
	content("B-" + id)
	if cached, steps, log := build(one); cached != 0 || steps != 2 {
		t.Fatalf("one, new content: %d of %d cached, want 0 of 2\n%s", cached, steps, log)
	}
	if cached, steps, log := build(two); cached != 0 || steps != 2 {
		t.Errorf("two, sharing the bucket: %d of %d cached, want none of one's cache\n%s", cached, steps, log)
	}
	testenv.S3Has(t, env, two+"/manifests/"+scopeName+"_trunk")
	// And one still hits its own.
	if cached, steps, log := build(one); cached != steps || steps != 2 {
		t.Errorf("one again: %d of %d cached, want all\n%s", cached, steps, log)
	}
}
