package e2e

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/internal/testenv"
)

// backend builds the cache line of one store; id keeps stores apart.
type backend struct {
	name string
	line func(t *testing.T, env testenv.Env, id string) string
}

func backends() []backend {
	return []backend{
		{"registry", func(_ *testing.T, env testenv.Env, id string) string {
			return fmt.Sprintf("type=registry,ref=%s/e2e/%s,registry.insecure=true", env.Registry, id)
		}},
		{"local", func(t *testing.T, _ testenv.Env, _ string) string {
			return "type=local,dest=" + filepath.Join(t.TempDir(), "cache")
		}},
		{"s3", func(_ *testing.T, env testenv.Env, id string) string {
			region := env.S3Region
			if region == "" {
				region = "us-east-1"
			}
			return fmt.Sprintf("type=s3,bucket=%s,region=%s,endpoint_url=%s,use_path_style=true,access_key_id=%s,secret_access_key=%s,prefix=%s/",
				env.S3Bucket, region, env.S3Endpoint, env.S3AccessKey, env.S3SecretKey, id)
		}},
		{"azblob", func(_ *testing.T, env testenv.Env, id string) string {
			// BuildKit creates the container when it is missing
			// (cache/remotecache/azblob/utils.go createContainerClient).
			return fmt.Sprintf("type=azblob,account_url=%s,account_name=%s,secret_access_key=%s,container=e2e-%s",
				env.AzureAccountURL, env.AzureAccountName, env.AzureAccountKey, id)
		}},
	}
}

// TestBackendRoundTrip exports from a build on main and imports on fresh
// builders: the same source, a changed source, and a new branch.
func TestBackendRoundTrip(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "s3", "azure")
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			id := testenv.RandomHex(5)
			line := b.line(t, env, id)
			name := "t" + id
			main := expand(t, "main", name, line, plan.Options{})
			if len(main.Exports) != 1 || len(main.Imports) == 0 {
				t.Fatalf("plan on main: %d exports, %d imports; want 1 and some", len(main.Exports), len(main.Imports))
			}
			if got := main.Exports[0].Attrs["mode"]; got != "max" {
				t.Errorf("export mode = %q, want the default max", got)
			}
			ctxDir := writeContext(t, "source "+id)

			cold := build(t, testenv.NewBuildkitd(t), ctxDir, main.Imports, main.Exports, nil)
			requireCold(t, cold)

			t.Run("same source on a fresh builder", func(t *testing.T) {
				res := build(t, testenv.NewBuildkitd(t), ctxDir, main.Imports, nil, nil)
				requireAllCached(t, "warm build", res)
			})

			t.Run("new branch reads main", func(t *testing.T) {
				feature := expand(t, "feature/x", name, line, plan.Options{})
				if len(feature.Imports) < 2 {
					t.Fatalf("feature plan imports %d scopes, want its own and main's", len(feature.Imports))
				}
				res := build(t, testenv.NewBuildkitd(t), ctxDir, feature.Imports, feature.Exports, nil)
				requireAllCached(t, "first feature build", res)
			})

			t.Run("changed source re-runs only later steps", func(t *testing.T) {
				changed := writeContext(t, "changed "+id)
				res := build(t, testenv.NewBuildkitd(t), changed, main.Imports, nil, nil)
				if v := vertex(t, res, "RUN echo one"); !v.Cached {
					t.Errorf("%q re-ran; it comes before COPY src/ and must be cached", v.Name)
				}
				for _, part := range []string{"COPY src/", "RUN cat /src/"} {
					if v := vertex(t, res, part); v.Cached {
						t.Errorf("%q was cached; its input changed", v.Name)
					}
				}
				if res.Steps != wantSteps || res.Cached != 1 {
					t.Errorf("steps=%d cached=%d, want %d and 1; cached: %q", res.Steps, res.Cached, wantSteps, steps(res, true))
				}
			})
		})
	}
}

// TestInlineCache pushes an image with inline cache and imports it, as
// bkcache plans it, from the image tag on a fresh builder.
func TestInlineCache(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	id := testenv.RandomHex(5)
	tag := fmt.Sprintf("%s/e2e/%s:main", env.Registry, id)
	opts := plan.Options{Tags: []string{tag}, HasImageOutput: true}
	p := expand(t, "main", "t"+id, "type=inline", opts)
	if len(p.Exports) != 1 || p.Exports[0].Type != "inline" {
		t.Fatalf("plan exports %v, want one inline export", p.Exports)
	}
	if got := p.Exports[0].Attrs["mode"]; got != "min" {
		t.Errorf("inline export mode = %q, want min (inline cannot hold max)", got)
	}
	ctxDir := writeContext(t, "inline "+id)
	push := func(o *buildkit.BuildOptions) { o.Tags = []string{tag}; o.Push = true }
	requireCold(t, build(t, testenv.NewBuildkitd(t), ctxDir, p.Imports, p.Exports, push))

	var fromTag bool
	for _, e := range p.Imports {
		fromTag = fromTag || (e.Type == "registry" && e.Attrs["ref"] == tag)
	}
	if !fromTag {
		t.Fatalf("plan imports %v, want type=registry,ref=%s", p.Imports, tag)
	}
	res := build(t, testenv.NewBuildkitd(t), ctxDir, p.Imports, nil, nil)
	requireAllCached(t, "import of the inline cache", res)
}

// TestMultipleExports exports one build to a registry and a local store;
// each alone must serve every step to a fresh builder.
func TestMultipleExports(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	id := testenv.RandomHex(5)
	sp := "t" + id
	lines := []string{
		fmt.Sprintf("type=registry,ref=%s/e2e/%s,registry.insecure=true", env.Registry, id),
		"type=local,dest=" + filepath.Join(t.TempDir(), "cache"),
	}
	var plans []plan.Plan
	for _, l := range lines {
		plans = append(plans, expand(t, "main", sp, l, plan.Options{}))
	}
	joint := expandLines(t, "main", sp, lines)
	if len(joint.Exports) != 2 {
		t.Fatalf("plan of both lines exports %d entries, want 2", len(joint.Exports))
	}
	ctxDir := writeContext(t, "multi "+id)
	requireCold(t, build(t, testenv.NewBuildkitd(t), ctxDir, nil, joint.Exports, nil))
	for i, p := range plans {
		t.Run(p.Imports[0].Type, func(t *testing.T) {
			res := build(t, testenv.NewBuildkitd(t), ctxDir, plans[i].Imports, nil, nil)
			requireAllCached(t, "import from "+p.Imports[0].Type+" alone", res)
		})
	}
}
