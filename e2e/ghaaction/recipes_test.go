package ghaaction

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/bkcache/bkcache/internal/testenv"
)

// recipe is one of docker/build-push-action's documented cache recipes
// (docs.docker.com/build/ci/github-actions/cache), with the store's
// address and credentials filled in for the test servers.
type recipe struct {
	name     string
	inputs   map[string]string  // cache-from, cache-to and what else the recipe sets
	afterRun func(t *testing.T) // a step the recipe runs after the build (the mv)
	stored   func(t *testing.T) // the store holds the exported cache
}

func recipes(t *testing.T, env testenv.Env, s *cacheService) []recipe {
	id := testenv.RandomHex(6)
	regCache := fmt.Sprintf("%s/recipes-%s/app:buildcache", env.Registry, id)
	image := fmt.Sprintf("%s/recipes-%s/img:latest", env.Registry, id)
	localDir := t.TempDir()
	cacheDir, newDir := filepath.Join(localDir, ".buildx-cache"), filepath.Join(localDir, ".buildx-cache-new")
	s3Name, azName := "recipe-"+id, "recipe-"+id
	s3Line := fmt.Sprintf("type=s3,region=%s,bucket=%s,name=%s,endpoint_url=%s,use_path_style=true,access_key_id=%s,secret_access_key=%s",
		env.S3Region, env.S3Bucket, s3Name, env.S3Endpoint, env.S3AccessKey, env.S3SecretKey)
	azLine := fmt.Sprintf("type=azblob,account_url=%s,account_name=%s,secret_access_key=%s,name=%s",
		env.AzureAccountURL, env.AzureAccountName, env.AzureAccountKey, azName)
	return []recipe{
		{
			name:   "gha with scope",
			inputs: map[string]string{"cache-from": "type=gha,scope=app", "cache-to": "type=gha,mode=max,scope=app"},
			stored: func(t *testing.T) {
				for _, e := range entriesByScope(s)[mainRef] {
					if strings.HasPrefix(e.Key, "index-app-") {
						return
					}
				}
				t.Errorf("no index of scope app in %s:\n%s", mainRef, describe(s.emu.Entries(repo)))
			},
		},
		{
			name:   "registry :buildcache",
			inputs: map[string]string{"cache-from": "type=registry,ref=" + regCache, "cache-to": "type=registry,ref=" + regCache + ",mode=max"},
			stored: func(t *testing.T) { registryManifest(t, regCache) },
		},
		{
			name: "local with the mv step",
			inputs: map[string]string{
				"cache-from": "type=local,src=" + cacheDir,
				"cache-to":   "type=local,dest=" + newDir + ",mode=max",
			},
			stored: func(t *testing.T) {
				if _, err := os.Stat(filepath.Join(cacheDir, "index.json")); err != nil {
					t.Errorf("after the mv step, %s holds no cache: %v", cacheDir, err)
				}
			},
			// rm -rf /tmp/.buildx-cache && mv /tmp/.buildx-cache-new /tmp/.buildx-cache
			afterRun: func(t *testing.T) {
				if err := os.RemoveAll(cacheDir); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(newDir, cacheDir); err != nil {
					t.Fatalf("the recipe's mv step fails: %v", err)
				}
			},
		},
		{
			name: "inline",
			inputs: map[string]string{
				"cache-from": "type=registry,ref=" + image, "cache-to": "type=inline",
				"push": "true", "tags": image,
			},
			stored: func(t *testing.T) {
				if cfg := imageConfig(t, image); !strings.Contains(cfg, "moby.buildkit.cache.v0") {
					t.Errorf("the image config of %s has no inline cache:\n%.300s", image, cfg)
				}
			},
		},
		{
			name:   "s3",
			inputs: map[string]string{"cache-from": s3Line, "cache-to": s3Line + ",mode=max"},
			stored: func(t *testing.T) { testenv.S3Has(t, env, "manifests/"+s3Name) },
		},
		{
			name:   "azblob",
			inputs: map[string]string{"cache-from": azLine, "cache-to": azLine + ",mode=max"},
			stored: func(t *testing.T) { azblobHas(t, env, "buildkit-cache", "manifests/"+azName) },
		},
	}
}

// TestBuildPushActionRecipes: each of build-push-action's cache recipes,
// unchanged, runs through the action on a push to the default branch and
// exports as written: the store holds the cache afterwards, and a second
// run on a fresh builder with the same recipe hits on every step.
func TestBuildPushActionRecipes(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "s3", "azure")
	s := startEmulator(t, 1)
	for _, rc := range recipes(t, env, s) {
		t.Run(rc.name, func(t *testing.T) {
			dir := writeContext(t, env)
			in := buildInputs(testenv.NewBuildkitd(t), dir)
			for k, v := range rc.inputs {
				in[k] = v
			}
			r := runAction(t, s, s.token(t, mainRef), pushMain, in)
			mustSucceed(t, r)
			if w := warnings(r.stdout); len(w) > 0 {
				t.Errorf("the recipe warned:\n%s", strings.Join(w, "\n"))
			}
			if got := r.outputs["cache-to"]; got == "" || strings.Contains(r.stdout, "dropped:") {
				t.Fatalf("cache-to = %q: the recipe's export was left out\n%s", got, r.stdout)
			}
			if cached, steps := hits(t, r); steps != 3 || cached != 0 {
				t.Errorf("first run: %d of %d steps cached, want 0 of 3", cached, steps)
			}
			if rc.afterRun != nil {
				rc.afterRun(t)
			}
			rc.stored(t)

			in["builder"] = testenv.NewBuildkitd(t)
			r = runAction(t, s, s.token(t, mainRef), pushMain, in)
			mustSucceed(t, r)
			if cached, steps := hits(t, r); steps != 3 || cached != steps {
				t.Errorf("second run on a fresh builder: %d of %d steps cached, want all\n%s", cached, steps, r.stdout)
			}
		})
	}
}

// registryManifest fetches ref's manifest (host/repo:tag) from the
// plain-HTTP test registry.
func registryManifest(t *testing.T, ref string) []byte {
	t.Helper()
	host, rest, _ := strings.Cut(ref, "/")
	repoPath, tag, _ := strings.Cut(rest, ":")
	return registryGet(t, host, repoPath+"/manifests/"+tag,
		"application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json")
}

// imageConfig is the config blob of image (one platform).
func imageConfig(t *testing.T, image string) string {
	t.Helper()
	var m struct {
		Config struct{ Digest string } `json:"config"`
	}
	if err := json.Unmarshal(registryManifest(t, image), &m); err != nil || m.Config.Digest == "" {
		t.Fatalf("manifest of %s: %v (config %q)", image, err, m.Config.Digest)
	}
	host, rest, _ := strings.Cut(image, "/")
	repoPath, _, _ := strings.Cut(rest, ":")
	return string(registryGet(t, host, repoPath+"/blobs/"+m.Config.Digest, ""))
}

func registryGet(t *testing.T, host, path, accept string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+host+"/v2/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v: %.200s", path, resp.Status, err, b)
	}
	return b
}

// azblobHas checks that Azurite's container holds blob.
func azblobHas(t *testing.T, env testenv.Env, container, blob string) {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(env.AzureAccountName, env.AzureAccountKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(env.AzureAccountURL, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.ServiceClient().NewContainerClient(container).NewBlobClient(blob).GetProperties(ctx, nil); err != nil {
		t.Errorf("azblob %s/%s: %v", container, blob, err)
	}
}
