package scope_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/internal/runnerenv"
	"github.com/bkcache/bkcache/scope"
)

// The safety invariant on what BuildKit is really given: no untrusted
// build's final cache-to writes anything a trusted build reads, whatever
// the backend and whether the export was planned or written as an explicit
// cache-to; and no planned export writes what a more trusted build reads.
// (A trusted build's explicit cache-to is kept as written.)

const finalRegistry = "127.0.0.1:5000/c"

// runtimeToken is an unsigned token of GitHub's shape: write access to
// write (none if ""), read access to read. BuildKit reads it unverified.
func runtimeToken(write string, read ...string) string {
	type acScope struct {
		Scope      string
		Permission int
	}
	var ac []acScope
	if write != "" {
		ac = append(ac, acScope{write, 3})
	}
	for _, r := range read {
		ac = append(ac, acScope{r, 1})
	}
	acJSON, _ := json.Marshal(ac)
	claims, _ := json.Marshal(map[string]any{"ac": string(acJSON), "exp": 1 << 40, "nbf": 0})
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc(claims) + ".sig"
}

// finalPlan plans ev as the action does, with the token GitHub gives the
// job (write: GITHUB_REF; read: the default branch), the cache lines of
// every backend and the explicit cache-to lines, and returns the final
// entries.
func finalPlan(t testing.TB, ev scope.Event, allow bool, explicitTo []string) (scope.Plan, plan.Plan, string, error) {
	sp, err := scope.Derive(ev, scope.Options{AllowUntrustedExport: allow})
	if err != nil {
		return scope.Plan{}, plan.Plan{}, "", err
	}
	token := runtimeToken(ev.Ref, "refs/heads/"+sp.DefaultBranch)
	env := map[string]string{
		"ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_RESULTS_URL": "http://127.0.0.1:1/",
		"ACTIONS_CACHE_SERVICE_V2": "true", "GITHUB_REF": ev.Ref,
	}
	cache := []string{"type=registry,ref=" + finalRegistry, "type=gha", "type=local,dest=/cache",
		"type=s3,bucket=b,region=r", "type=azblob,account_url=http://127.0.0.1:2/acct"}
	// The explicit cache-from a user would write next to the explicit
	// cache-to lines: this build's own scopes, and a fixed tag.
	explicitFrom := []string{"type=registry,ref=" + finalRegistry + "-explicit:cache"}
	for _, s := range sp.Imports {
		explicitFrom = append(explicitFrom, "type=registry,ref="+finalRegistry+"-explicit:"+s.Name(sp.Build))
	}
	p, err := plan.Expand(cache, explicitFrom, explicitTo, sp, plan.Options{GitHubRuntime: true})
	if err != nil {
		return sp, plan.Plan{}, "", err
	}
	return sp, plan.Finalize(p, func(k string) string { return env[k] }), token, nil
}

// reads is everything a build's final imports read: registry refs, local
// directories, s3/azblob names, and for gha the refs its token may read.
func reads(p plan.Plan, token string) []string {
	var out []string
	for _, e := range p.Imports {
		out = append(out, locations(e, token, false)...)
	}
	return out
}

// locations names where an entry reads or writes, comparable across
// builds. A gha import reads every ref of its token; an export writes the
// token's writable ref.
func locations(e cacheentry.Entry, token string, export bool) []string {
	a := e.Attrs
	switch e.Type {
	case cacheentry.TypeGHA:
		scopeName := a["scope"]
		if scopeName == "" {
			scopeName = "buildkit"
		}
		if export {
			w, _ := runnerenv.WritableRef(a["token"])
			return []string{"gha " + scopeName + " " + w}
		}
		scopes, _ := runnerenv.TokenScopes(a["token"])
		var out []string
		for _, s := range scopes {
			out = append(out, "gha "+scopeName+" "+s.Ref)
		}
		return out
	case cacheentry.TypeLocal:
		if export {
			return []string{"local " + a["dest"]}
		}
		return []string{"local " + a["src"]}
	case cacheentry.TypeInline:
		return []string{"inline"}
	}
	return cacheentry.ExportLocations(e)
}

type finalBuild struct {
	name  string
	sp    scope.Plan
	final plan.Plan
	token string
}

// TestSafetyInvariantFinal: for every fixture, with and without
// allow-untrusted-export, with explicit cache-to lines naming every scope
// of the fixtures, no final export writes what a more trusted build's
// final imports read.
func TestSafetyInvariantFinal(t *testing.T) {
	fixtures := scope.Fixtures(t)
	var builds []finalBuild
	// Every scope any fixture plans, as an explicit cache-to on every run.
	var explicit []string
	seen := map[string]bool{}
	for _, f := range fixtures {
		for _, allow := range []bool{false, true} {
			sp, err := scope.Derive(f.Event, scope.Options{AllowUntrustedExport: allow})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range sp.Imports {
				if n := s.Name(sp.Build); !seen[n] {
					seen[n] = true
					explicit = append(explicit, "type=registry,ref="+finalRegistry+"-explicit:"+n)
				}
			}
		}
	}
	explicit = append(explicit, "type=gha,scope=explicit", "type=registry,ref="+finalRegistry+"-explicit:cache")
	for _, f := range fixtures {
		for _, allow := range []bool{false, true} {
			sp, final, token, err := finalPlan(t, f.Event, allow, explicit)
			if err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
			builds = append(builds, finalBuild{fmt.Sprintf("%s (allow=%v)", f.Name, allow), sp, final, token})
		}
	}
	for _, a := range builds {
		t.Run(a.name, func(t *testing.T) {
			for _, e := range a.final.Exports {
				// A trusted build's explicit cache-to is the user's
				// choice, kept as written; what a cache: line plans, and
				// everything an untrusted build writes, obeys the rule.
				if scope.TrustRank(a.sp) > 0 && strings.Contains(e.String(), "-explicit") {
					continue
				}
				for _, loc := range locations(e, a.token, true) {
					for _, b := range builds {
						if scope.TrustRank(b.sp) > scope.TrustRank(a.sp) && slices.Contains(reads(b.final, b.token), loc) {
							t.Errorf("exports %s (%s), which the more trusted %s reads", loc, e.Redacted(), b.name)
						}
					}
				}
			}
		})
	}
}

// FuzzFinalEntries: for any event, payload, explicit cache-to line and
// runtime token, the final entries obey the rule: a deleted ref caches
// nothing, a read-only plan exports nothing, gha is exported only when the
// token writes the export scope's own ref (a pull request's for untrusted
// builds), and an untrusted build's other exports write only its scope.
// Seeds: testdata/fuzz/FuzzFinalEntries.
func FuzzFinalEntries(f *testing.F) {
	f.Add("pull_request_target", "refs/heads/main", []byte(`{"number":3,"pull_request":{"number":3,"base":{"ref":"main","repo":{"full_name":"a/b"}},"head":{"ref":"x","repo":{"full_name":"f/b"}}},"repository":{"full_name":"a/b","default_branch":"main"}}`), "type=gha,mode=max", "refs/heads/main", true)
	f.Add("pull_request", "refs/pull/3/merge", []byte(`{"number":3,"pull_request":{"number":3,"base":{"ref":"main","repo":{"full_name":"a/b"}},"head":{"ref":"x","repo":{"full_name":"f/b"}}},"repository":{"full_name":"a/b","default_branch":"main"}}`), "type=registry,ref=r/c:buildkit_main", "refs/pull/3/merge", true)
	f.Add("push", "refs/heads/gone", []byte(`{"deleted":true,"repository":{"default_branch":"main"}}`), "type=local,dest=/x/buildkit_main", "refs/heads/gone", false)
	f.Add("workflow_run", "refs/heads/main", []byte(`{"workflow_run":{"event":"push","head_branch":"refs/tags/v1","head_repository":{"full_name":"a/b"},"repository":{"full_name":"a/b"}},"repository":{"default_branch":"main"}}`), "type=s3,bucket=b,region=r,name=buildkit_main;buildkit_tag-v1", "refs/heads/main", false)
	f.Fuzz(func(t *testing.T, name, ref string, payload []byte, explicitTo, writeRef string, allow bool) {
		ev := scope.Event{Name: name, Ref: ref, Repository: "a/b"}
		var err error
		if ev.Payload, err = scope.DecodePayload(payload); err != nil {
			return
		}
		sp, err := scope.Derive(ev, scope.Options{AllowUntrustedExport: allow})
		if err != nil {
			return
		}
		token := runtimeToken(writeRef, "refs/heads/main")
		env := map[string]string{"ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_RESULTS_URL": "http://127.0.0.1:1/", "GITHUB_REF": ref}
		p, err := plan.Expand([]string{"type=registry,ref=r/c", "type=gha", "type=local,dest=/cache"}, nil, []string{explicitTo}, sp, plan.Options{GitHubRuntime: true, HasImageOutput: true})
		if err != nil {
			return // explicitTo is not a valid entry, or writes where a planned one does
		}
		final := plan.Finalize(p, func(k string) string { return env[k] })
		if sp.Deleted && (len(final.Imports) > 0 || len(final.Exports) > 0) {
			t.Fatalf("deleted ref: imports %v, exports %v", final.Imports, final.Exports)
		}
		for _, e := range final.Exports {
			if sp.Export == nil {
				t.Fatalf("read-only plan exports %s", e.Redacted())
			}
			if e.Type == cacheentry.TypeGHA {
				w, err := runnerenv.WritableRef(e.Attrs["token"])
				if err != nil || w != sp.Export.Ref || (!sp.Trusted && !strings.HasPrefix(w, "refs/pull/")) {
					t.Fatalf("gha export writes %q; plan exports %+v (trusted=%v)", w, *sp.Export, sp.Trusted)
				}
				continue
			}
			if sp.Trusted {
				continue
			}
			want := sp.Export.Name(sp.Build)
			if e.Type == cacheentry.TypeInline {
				t.Fatalf("untrusted plan exports inline cache")
			}
			for _, loc := range cacheentry.ExportLocations(e) {
				if !strings.Contains(loc, want) {
					t.Fatalf("untrusted plan writes %s, not its scope %s", loc, want)
				}
			}
		}
		if len(final.Exports)+len(final.Dropped) < len(p.Exports) {
			t.Fatalf("%d exports planned, %d kept and %d dropped", len(p.Exports), len(final.Exports), len(final.Dropped))
		}
	})
}
