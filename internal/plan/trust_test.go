package plan

import (
	"encoding/base64"
	"path/filepath"
	"slices"
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

// tokenWritingAll is a runtime token that may write every one of refs.
func tokenWritingAll(refs ...string) string {
	enc := base64.RawURLEncoding.EncodeToString
	var ac []string
	for _, r := range refs {
		ac = append(ac, `{\"Scope\":\"`+r+`\",\"Permission\":3}`)
	}
	return enc([]byte(`{"alg":"HS256"}`)) + "." + enc([]byte(`{"ac":"[`+strings.Join(ac, ",")+`]"}`)) + ".sig"
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
	// On this disk /links/pr is a symlink to /c/buildkit_main.
	disk := func(p string) string {
		if rest, ok := strings.CutPrefix(p, "/links/buildkit_pr-42"); ok {
			return "/c/buildkit_main" + rest
		}
		return filepath.Clean(p)
	}
	for _, tt := range []struct {
		name  string
		sp    scope.Plan
		entry string
		repo  string
		why   string // "" when kept
	}{
		{"trusted registry to its scope", pushMain, "type=registry,ref=r/c:buildkit_main", "", ""},
		{"trusted explicit fixed tag is kept as written", pushMain, "type=registry,ref=r/c:cache", "", ""},
		{"trusted registry without a tag", pushMain, "type=registry,ref=r/c", "", ""},
		{"trusted PR writing its base is kept as written", pr, "type=registry,ref=r/c:app_main", "", ""},
		{"trusted local to the store", pr, "type=local,dest=/c", "", ""},
		{"trusted s3 with no prefix is kept as written", pushMain, "type=s3,bucket=b,region=r,name=buildkit_main", "o/r", ""},
		{"inline trusted", pushMain, "type=inline", "", ""},
		{"untrusted registry own scope", forkExport, "type=registry,ref=r/c:buildkit_pr-42", "", ""},
		{"untrusted registry own scope, normalized", forkExport, "type=registry,ref=docker.io/library/c:buildkit_pr-42", "", ""},
		{"untrusted registry fixed tag", forkExport, "type=registry,ref=r/c:cache", "", "it writes registry ref docker.io/r/c:cache, not registry ref docker.io/r/c:buildkit_pr-42"},
		{"untrusted registry without a tag writes latest", forkExport, "type=registry,ref=r/c", "", "r/c:latest"},
		{"untrusted registry by digest", forkExport, "type=registry,ref=r/c@sha256:" + strings.Repeat("a", 64), "", "cannot be told"},
		{"untrusted PR writing the base", forkExport, "type=registry,ref=r/c:buildkit_main", "", "it writes registry ref docker.io/r/c:buildkit_main"},
		{"untrusted local own scope", forkExport, "type=local,dest=/c/x/../buildkit_pr-42", "", ""},
		{"untrusted local through a symlink into main's", forkExport, "type=local,dest=/links/buildkit_pr-42", "", `it writes local dest /c/buildkit_main`},
		{"untrusted local to the store", forkExport, "type=local,dest=/c", "", "it writes local dest /c,"},
		{"untrusted s3 own name, no repository known", forkExport, "type=s3,bucket=b,region=r,name=buildkit_pr-42", "", ""},
		{"untrusted s3 own name without the repository prefix", forkExport, "type=s3,bucket=b,region=r,name=buildkit_pr-42", "o/r", `manifests "o/r/manifests/" name "buildkit_pr-42"`},
		{"untrusted s3 own name under the repository prefix", forkExport, "type=s3,bucket=b,region=r,prefix=o/r/,name=buildkit_pr-42", "o/r", ""},
		{"untrusted s3 own name under the user's prefix", forkExport, "type=s3,bucket=b,region=r,prefix=team/,name=buildkit_pr-42", "o/r", ""},
		{"untrusted s3 second name elsewhere", forkExport, "type=s3,bucket=b,region=r,name=buildkit_pr-42;buildkit_main", "", `name "buildkit_main"`},
		{"untrusted s3 default name", forkExport, "type=s3,bucket=b,region=r", "", `name "buildkit"`},
		{"untrusted azblob own name in the shared default container", forkExport, "type=azblob,account_url=https://a.blob.core.windows.net/,name=buildkit_pr-42", "o/r", `manifests "o/r/manifests"`},
		{"untrusted azblob own name in the user's container", forkExport, "type=azblob,account_url=https://a.blob.core.windows.net/,container=c,name=buildkit_pr-42", "o/r", ""},
		{"untrusted azblob own name under the repository prefix", forkExport, "type=azblob,account_url=https://a.blob.core.windows.net/,prefix=o/r,name=buildkit_pr-42", "o/r", ""},
		{"inline untrusted", forkExport, "type=inline", "", "untrusted build: inline cache travels in the image tags"},
		{"read-only plan", forkPR, "type=registry,ref=r/c:buildkit_pr-42", "", "untrusted and read-only"},
		{"gha token writes the export ref", pr, "type=gha,token=" + tokenWriting("refs/pull/42/merge"), "", ""},
		{"gha token writes the base", forkExport, "type=gha,token=" + tokenWriting("refs/heads/main"), "", "untrusted build, and the gha exporter would write refs/heads/main"},
		{"gha token writes another branch", pushFeat, "type=gha,token=" + tokenWriting("refs/heads/main"), "", "the gha exporter writes refs/heads/main (the ref the runtime token may write), not the planned export scope feature-a--3f2a9c01"},
		{"gha without an ac claim writes nothing", pushMain, "type=gha,token=opaque", "", "gha writes nothing: the runtime token has no readable `ac` claim"},
		{"gha with a malformed ac claim writes nothing", pushMain, "type=gha,token=" + strings.Replace(tokenWriting("refs/heads/main"), ".sig", "", 1) + "x.sig", "", "gha writes nothing"},
		{"gha with several writable refs writes nothing", pushMain, "type=gha,token=" + tokenWritingAll("refs/heads/main", "refs/heads/other"), "", "several refs (refs/heads/main, refs/heads/other)"},
		{"gha on a read-only plan", forkPR, "type=gha,token=" + tokenWriting("refs/pull/42/merge"), "", "read-only (allow-untrusted-export lets fork pull requests write only their own pr-N scope), but the gha exporter would write refs/pull/42/merge"},
		{"gha in a merge queue", mergeQueue, "type=gha,token=" + tokenWriting("refs/heads/gh-readonly-queue/main/pr-1-ab"), "", "not the planned export scope mq-main"},
		{"gha token may write nothing", pushMain, "type=gha,token=" + tokenScopes(`{\"Scope\":\"refs/heads/main\",\"Permission\":1}`), "", "this token may write none"},
		{"gha token writes an empty scope", pushMain, "type=gha,token=" + tokenWriting(""), "", "this token's writable scope is empty (it names no ref)"},
		{"deleted ref", deleted, "type=registry,ref=r/c:buildkit_main", "", "deleted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := entry(tt.entry)
			tr := Trust{Scope: tt.sp, Repository: tt.repo, Resolve: disk}
			imports := []cacheentry.Entry{entry("type=registry,ref=r/c:buildkit_main")}
			keptIn, kept, dropped := EnforceTrust(imports, []cacheentry.Entry{e}, tr)
			if got := tr.WriteRefusal(e); (got == "") != (tt.why == "") {
				t.Errorf("WriteRefusal = %q, but EnforceTrust decided otherwise", got)
			}
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
			if s := d.String(); !strings.HasPrefix(s, "cache-to type=") || strings.Contains(s, "Permission") || strings.Contains(s, "ey") {
				t.Errorf("warning %q: want the redacted entry, never the token", s)
			}
			if tt.sp.Deleted && (len(keptIn) != 0 || len(dropped) != 2) {
				t.Errorf("deleted ref: imports kept %v, dropped %v", keptIn, dropped)
			}
		})
	}
}

func TestSharedHints(t *testing.T) {
	feat, main := pushFeat, pushMain
	feat.DefaultBranch, main.DefaultBranch = "main", "main"
	fork := forkPR
	fork.Export, fork.DefaultBranch = &prScope, "main"
	entries := func(ss ...string) []cacheentry.Entry {
		var out []cacheentry.Entry
		for _, s := range ss {
			dir := cacheentry.Export
			if strings.Contains(s, "src=") {
				dir = cacheentry.Import
			}
			e, err := cacheentry.Parse(s, dir)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
		return out
	}
	for _, tt := range []struct {
		name             string
		sp               scope.Plan
		imports, exports []cacheentry.Entry
		want             string // "" when no hint
	}{
		{"branch writes the tag it imports", feat,
			entries("type=registry,ref=ghcr.io/o/app:cache"), entries("type=registry,ref=ghcr.io/o/app:cache,mode=max,ignore-error=true"),
			"cache-to type=registry,ref=ghcr.io/o/app:cache,ignore-error=true,mode=max writes where the default branch (main) reads, so this feature-a--3f2a9c01 build replaces its cache; kept as written. `cache: type=registry,ref=ghcr.io/o/app,mode=max` instead"},
		{"branch writes the default branch's scope", feat,
			nil, entries("type=s3,bucket=b,region=r,name=buildkit_main"),
			"`cache: type=s3,bucket=b,region=r` instead"},
		{"branch writes the directory it imports", feat,
			entries("type=local,src=/tmp/.buildx-cache"), entries("type=local,dest=/tmp/.buildx-cache"),
			"`cache: type=local,dest=/tmp` instead"},
		{"branch writes its own place", feat,
			entries("type=registry,ref=r/c:cache"), entries("type=registry,ref=r/c:buildkit_feature-a--3f2a9c01"), ""},
		{"the default branch itself", main,
			entries("type=registry,ref=r/c:cache"), entries("type=registry,ref=r/c:cache"), ""},
		{"untrusted builds get no hint (their entries are dropped)", fork,
			entries("type=registry,ref=r/c:cache"), entries("type=registry,ref=r/c:cache"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Trust{Scope: tt.sp}.SharedHints(tt.imports, tt.exports)
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("hints %q, want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Errorf("hints %q, want one containing %q", got, tt.want)
			}
		})
	}
}

func TestRepositoryPrefix(t *testing.T) {
	for _, tt := range []struct{ repo, want string }{
		{"Codertocat/Hello-World", "codertocat/hello-world/"},
		{"o/r.js", "o/r.js/"},
		{"o/we ird", "o/we-ird/"},
		{"", ""},
		{"noslash", ""},
		{"/r", ""},
	} {
		if got := RepositoryPrefix(tt.repo); got != tt.want {
			t.Errorf("RepositoryPrefix(%q) = %q, want %q", tt.repo, got, tt.want)
		}
	}
}

// TestSharedBucket: two repositories whose workflows name the same
// bucket and container write nowhere the other reads or writes; the
// location from before the repository prefix is read, never written.
func TestSharedBucket(t *testing.T) {
	lines := []string{"type=s3,bucket=shared,region=r", "type=azblob,account_url=https://a.blob.core.windows.net/"}
	main := pushMain
	main.DefaultBranch = "main"
	fork := forkPR
	fork.Export, fork.DefaultBranch = &prScope, "main"
	fork.Imports = append(fork.Imports, mainScope)
	type run struct {
		reads, writes []string
	}
	plans := map[string][]run{}
	for _, repo := range []string{"a/app", "b/app"} {
		for _, sp := range []scope.Plan{main, pushFeat, fork} {
			p, err := Expand(lines, nil, nil, sp, Options{Repository: repo})
			if err != nil {
				t.Fatal(err)
			}
			p = Finalize(p, env(nil))
			var r run
			for _, e := range p.Imports {
				r.reads = append(r.reads, p.Trust.Locations(e)...)
			}
			for _, e := range p.Exports {
				r.writes = append(r.writes, p.Trust.Locations(e)...)
			}
			if len(r.writes) != 2 {
				t.Fatalf("%s: exports %v, want s3 and azblob", repo, p.Exports)
			}
			plans[repo] = append(plans[repo], r)
		}
	}
	for _, w := range []struct{ writer, other string }{{"a/app", "b/app"}, {"b/app", "a/app"}} {
		for _, a := range plans[w.writer] {
			for _, loc := range a.writes {
				if !strings.Contains(loc, w.writer+"/") {
					t.Errorf("%s writes %s, which does not name the repository", w.writer, loc)
				}
				for _, b := range plans[w.other] {
					if slices.Contains(b.reads, loc) || slices.Contains(b.writes, loc) {
						t.Errorf("%s writes %s, which %s uses too", w.writer, loc, w.other)
					}
				}
			}
		}
	}
}

// TestOldLocationImported: after the repository prefix, the default
// branch's cache at the old location is imported last, read-only, once
// per store; a prefix or container the user set changes nothing.
func TestOldLocationImported(t *testing.T) {
	main := pushFeat
	main.DefaultBranch = "main"
	for _, tt := range []struct {
		line     string
		wantLast string // "" when no fallback
	}{
		{"type=s3,bucket=b,region=r", "type=s3,bucket=b,name=buildkit_main,region=r"},
		{"type=azblob,account_url=https://a.blob.core.windows.net/", "type=azblob,account_url=https://a.blob.core.windows.net/,name=buildkit_main"},
		{"type=s3,bucket=b,region=r,prefix=team/", ""},
		{"type=azblob,account_url=https://a.blob.core.windows.net/,container=c", ""},
		{"type=registry,ref=r/c", ""},
	} {
		t.Run(tt.line, func(t *testing.T) {
			p, err := Expand([]string{tt.line}, nil, nil, main, Options{Repository: "o/r"})
			if err != nil {
				t.Fatal(err)
			}
			var old []string
			for _, e := range p.Imports {
				if _, ok := e.Attrs["prefix"]; !ok || e.Attrs["prefix"] == "team/" {
					old = append(old, e.String())
				}
			}
			if tt.wantLast == "" {
				if tt.line != "type=registry,ref=r/c" && len(old) != len(p.Imports) {
					t.Errorf("imports %v: a store the user named got the repository", p.Imports)
				}
				for _, e := range p.Imports {
					if strings.Contains(e.String(), "o/r") {
						t.Errorf("import %s names the repository", e)
					}
				}
				return
			}
			if len(old) != 1 || p.Imports[len(p.Imports)-1].String() != tt.wantLast {
				t.Errorf("imports %v: want %s last, and only that without the prefix", p.Imports, tt.wantLast)
			}
			if !strings.Contains(strings.Join(p.Notes, "\n"), "read-only") {
				t.Errorf("no note on the fallback import: %q", p.Notes)
			}
			for _, e := range p.Exports {
				if e.Attrs["prefix"] != "o/r/" {
					t.Errorf("export %s: want prefix o/r/", e)
				}
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
