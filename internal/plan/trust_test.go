package plan

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/scope"
)

// tokenWriting is a runtime token of GitHub's shape that may write ref.
func tokenWriting(ref string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256"}`)) + "." + enc([]byte(`{"ac":"[{\"Scope\":\"`+ref+`\",\"Permission\":3}]"}`)) + ".sig"
}

// tokenScopes is a runtime token whose `ac` claim lists scopes, each a
// JSON object with its quotes escaped.
func tokenScopes(scopes ...string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256"}`)) + "." + enc([]byte(`{"ac":"[`+strings.Join(scopes, ",")+`]"}`)) + ".sig"
}

func TestEnforceTrust(t *testing.T) {
	forkExport := forkPR
	forkExport.Export = &prScope
	deleted := scope.Plan{Build: "buildkit", Deleted: true}
	mq := scope.Scope{Key: "mq-main", Ref: "merge queue of refs/heads/main", Kind: scope.KindMergeQueue}
	mergeQueue := scope.Plan{Build: "buildkit", Export: &mq, Trusted: true}
	entry := func(s string) cacheentry.Entry {
		t.Helper()
		e, err := cacheentry.Parse(s, cacheentry.Export)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for _, tt := range []struct {
		name      string
		sp        scope.Plan
		entry     string
		runnerRef string
		why       string // "" when kept
	}{
		{"trusted registry to its scope", pushMain, "type=registry,ref=r/c:buildkit_main", "", ""},
		{"trusted registry to a fixed tag", pushMain, "type=registry,ref=r/c:cache", "", "it writes cache, not this build's export scope buildkit_main"},
		{"registry without a tag writes latest", pushMain, "type=registry,ref=r/c", "", "it writes latest"},
		{"PR registry to the base", pr, "type=registry,ref=r/c:app_main", "", "it writes app_main, not this build's export scope app_pr-42"},
		{"local to the scope directory", pr, "type=local,dest=/c/x/../app_pr-42", "", ""},
		{"local to the store", pr, "type=local,dest=/c", "", "it writes c,"},
		{"s3 one name", pushFeat, "type=s3,bucket=b,region=r,name=buildkit_feature-a--3f2a9c01", "", ""},
		{"s3 second name elsewhere", pushFeat, "type=s3,bucket=b,region=r,name=buildkit_feature-a--3f2a9c01;buildkit_main", "", "it writes buildkit_feature-a--3f2a9c01;buildkit_main"},
		{"azblob default name", pushMain, "type=azblob,account_url=https://a.blob.core.windows.net/", "", "it writes buildkit,"},
		{"inline trusted", pushMain, "type=inline", "", ""},
		{"inline untrusted", forkExport, "type=inline", "", "untrusted build: inline cache travels in the image tags"},
		{"untrusted own scope", forkExport, "type=registry,ref=r/c:buildkit_pr-42", "", ""},
		{"read-only plan", forkPR, "type=registry,ref=r/c:buildkit_pr-42", "", "untrusted and read-only"},
		{"gha token writes the export ref", pr, "type=gha,token=" + tokenWriting("refs/pull/42/merge"), "", ""},
		{"gha token writes the base", forkExport, "type=gha,token=" + tokenWriting("refs/heads/main"), "", "untrusted build, and the gha exporter would write refs/heads/main"},
		{"gha token writes another branch", pushFeat, "type=gha,token=" + tokenWriting("refs/heads/main"), "", "the gha exporter writes refs/heads/main (the ref the runtime token may write), not the planned export scope feature-a--3f2a9c01"},
		{"gha without ac uses GITHUB_REF", pushMain, "type=gha,token=opaque", "refs/heads/main", ""},
		{"gha without ac, other GITHUB_REF", pushMain, "type=gha,token=opaque", "refs/heads/dev", "writes refs/heads/dev"},
		{"gha on a read-only plan", forkPR, "type=gha,token=" + tokenWriting("refs/pull/42/merge"), "", "read-only (allow-untrusted-export lets fork pull requests write only their own pr-N scope), but the gha exporter would write refs/pull/42/merge"},
		{"gha in a merge queue", mergeQueue, "type=gha,token=" + tokenWriting("refs/heads/gh-readonly-queue/main/pr-1-ab"), "", "not the planned export scope mq-main"},
		{"gha token may write nothing", pushMain, "type=gha,token=" + tokenScopes(`{\"Scope\":\"refs/heads/main\",\"Permission\":1}`), "", "this token may write none"},
		{"gha token writes an empty scope", pushMain, "type=gha,token=" + tokenWriting(""), "", "this token's writable scope is empty (it names no ref)"},
		{"gha opaque token without GITHUB_REF", pushMain, "type=gha,token=opaque", "", "this token may write none"},
		{"deleted ref", deleted, "type=registry,ref=r/c:buildkit_main", "", "deleted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := entry(tt.entry)
			imports := []cacheentry.Entry{entry("type=registry,ref=r/c:buildkit_main")}
			keptIn, kept, dropped := EnforceTrust(imports, []cacheentry.Entry{e}, tt.sp, tt.runnerRef)
			if tt.why == "" {
				if len(kept) != 1 || len(dropped) != 0 {
					t.Fatalf("want kept, got dropped %v", dropped)
				}
				return
			}
			if len(kept) != 0 || len(dropped) == 0 {
				t.Fatalf("want dropped (%s), got kept", tt.why)
			}
			d := dropped[len(dropped)-1]
			if !strings.Contains(d.Reason, tt.why) {
				t.Errorf("reason %q, want it to contain %q", d.Reason, tt.why)
			}
			if s := d.String(); !strings.HasPrefix(s, "cache-to type=") || strings.Contains(s, "Permission") {
				t.Errorf("warning %q: want the redacted entry, never the token", s)
			}
			if tt.sp.Deleted && (len(keptIn) != 0 || len(dropped) != 2) {
				t.Errorf("deleted ref: imports kept %v, dropped %v", keptIn, dropped)
			}
		})
	}
}

func TestFinalizeDropsInactiveGHA(t *testing.T) {
	p := Plan{Scope: pushMain, Imports: []cacheentry.Entry{{Type: "gha", Attrs: map[string]string{"scope": "buildkit"}}},
		Exports: []cacheentry.Entry{{Type: "gha", Attrs: map[string]string{"scope": "buildkit", "mode": "max"}}}}
	got := Finalize(p, env(nil))
	if len(got.Imports)+len(got.Exports) != 0 || len(got.Dropped) != 2 {
		t.Fatalf("Finalize without a runtime = %+v", got)
	}
	if !strings.Contains(got.Describe(), "left out:\n  cache-from type=gha,scope=buildkit dropped: no ACTIONS_RUNTIME_TOKEN") {
		t.Errorf("Describe does not list the dropped entries:\n%s", got.Describe())
	}
}
