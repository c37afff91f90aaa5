package scope

import (
	"reflect"
	"strings"
	"testing"
)

// imp renders a scope as "key (reason)" for compact expectations.
func imp(s Scope) string { return s.Key + " (" + s.Reason + ")" }

func TestDeriveFixtures(t *testing.T) {
	const (
		loginForm = "feature-login-form--d51d2737" // refs/heads/feature/Login_Form
		login     = "feature-login--3de6205b"      // refs/heads/feature/login
		release2x = "release-2.x--d4c938d6"        // refs/heads/release/2.x
	)
	tests := []struct {
		fixture string
		allow   bool
		export  string // "" = read-only
		imports []string
		trusted bool
	}{
		{"push branch", false, loginForm, []string{loginForm + " (this branch)", "develop (default branch)"}, true},
		{"push default branch trunk", false, "trunk", []string{"trunk (default branch)"}, true},
		{"push tag", false, "tag-v1.2.3", []string{"tag-v1.2.3 (tag)", "develop (default branch)"}, true},
		{"push deleted branch", false, "", nil, false},
		{"pull_request same repo", false, "pr-17", []string{"pr-17 (this PR)", login + " (PR head branch)", "develop (PR base, default branch)"}, true},
		{"pull_request fork", false, "", []string{"pr-42 (this PR)", "master (PR base, default branch)"}, false},
		{"pull_request fork", true, "pr-42", []string{"pr-42 (this PR)", "master (PR base, default branch)"}, false},
		{"pull_request_target fork", false, "", []string{"master (PR base, default branch)"}, false},
		{"pull_request_target fork", true, "pr-42", []string{"master (PR base, default branch)"}, false},
		{"pull_request_target same repo", false, "", []string{"develop (PR base, default branch)"}, false},
		{"pull_request_target same repo", true, "", []string{"develop (PR base, default branch)"}, false},
		{"merge_group", false, "mq-trunk", []string{"mq-trunk (merge queue)", "trunk (merge queue base, default branch)"}, true},
		{"workflow_dispatch", false, release2x, []string{release2x + " (this branch)", "develop (default branch)"}, true},
		{"schedule", false, "develop", []string{"develop (default branch)"}, true},
		{"repository_dispatch", false, "develop", []string{"develop (default branch)"}, true},
		{"release", false, "tag-v2.0.0", []string{"tag-v2.0.0 (tag)", "develop (default branch)"}, true},
		{"workflow_run after push", false, login, []string{login + " (this branch)", "develop (default branch)"}, true},
		{"workflow_run after same-repo PR", false, "pr-2", []string{"pr-2 (this PR)", "changes (PR head branch)", "master (PR base)", "develop (default branch)"}, true},
		{"workflow_run after fork PR", false, "", []string{"develop (default branch)"}, false},
		{"workflow_run after fork PR", true, "", []string{"develop (default branch)"}, false},
		{"issue_comment on PR", false, "", []string{"master (default branch)"}, false},
		{"issue_comment on PR", true, "", []string{"master (default branch)"}, false},
		{"delete branch", false, "", nil, false},
	}
	for _, tt := range tests {
		name := tt.fixture
		if tt.allow {
			name += " allow-untrusted-export"
		}
		t.Run(name, func(t *testing.T) {
			ev := fixtureByName(t, tt.fixture).event(t)
			p, err := Derive(ev, Options{AllowUntrustedExport: tt.allow})
			if err != nil {
				t.Fatalf("Derive: %v", err)
			}
			got := ""
			if p.Export != nil {
				got = p.Export.Key
			}
			if got != tt.export {
				t.Errorf("export = %q, want %q\n%+v", got, tt.export, p)
			}
			var imports []string
			for _, s := range p.Imports {
				imports = append(imports, imp(s))
			}
			if !reflect.DeepEqual(imports, tt.imports) {
				t.Errorf("imports = %q, want %q\n%+v", imports, tt.imports, p)
			}
			if p.Trusted != tt.trusted {
				t.Errorf("trusted = %v, want %v", p.Trusted, tt.trusted)
			}
			if p.Build != "buildkit" {
				t.Errorf("build = %q, want buildkit", p.Build)
			}
		})
	}
}

// Every fixture says which branch is the default; the plan must use it and
// never fall back to "main".
func TestDefaultBranchFromPayload(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			ev := f.event(t)
			want := str(ev.Payload, "repository", "default_branch")
			p, err := Derive(ev, Options{DefaultBranch: "main"})
			if err != nil {
				t.Fatal(err)
			}
			if p.DefaultBranch != want {
				t.Errorf("DefaultBranch = %q, want %q from the payload", p.DefaultBranch, want)
			}
			for _, s := range p.Imports {
				if s.Key == "main" {
					t.Errorf("imports main although the default branch is %q", want)
				}
			}
		})
	}
}

func TestDeriveWithoutPayload(t *testing.T) {
	tests := []struct {
		name    string
		ev      Event
		opts    Options
		imports []string
		note    string
	}{
		{"cli run with default branch option", Event{Name: "push", Ref: "refs/heads/topic"}, Options{DefaultBranch: "refs/heads/trunk"},
			[]string{"topic (this branch)", "trunk (default branch)"}, ""},
		{"cli run without default branch", Event{Name: "push", Ref: "refs/heads/topic"}, Options{},
			[]string{"topic (this branch)"}, "default branch unknown"},
		{"pull_request from env only counts as fork", Event{Name: "pull_request", Ref: "refs/pull/9/merge", HeadRef: "x", BaseRef: "trunk"}, Options{},
			[]string{"pr-9 (this PR)", "trunk (PR base)"}, "fork"},
		{"schedule without ref uses default branch", Event{Name: "schedule"}, Options{DefaultBranch: "develop"},
			[]string{"develop (default branch)"}, ""},
		{"unknown event is read-only", Event{Name: "issues", Ref: "refs/heads/develop"}, Options{DefaultBranch: "develop"},
			[]string{"develop (default branch)"}, "read-only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Derive(tt.ev, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var imports []string
			for _, s := range p.Imports {
				imports = append(imports, imp(s))
			}
			if !reflect.DeepEqual(imports, tt.imports) {
				t.Errorf("imports = %q, want %q", imports, tt.imports)
			}
			if tt.note != "" && !strings.Contains(strings.Join(p.Notes, "\n"), tt.note) {
				t.Errorf("notes %q lack %q", p.Notes, tt.note)
			}
		})
	}
}

func TestDeriveErrors(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"no event name", Event{}, "event name is empty"},
		{"push without ref", Event{Name: "push"}, "no ref"},
		{"push to odd ref", Event{Name: "push", Ref: "refs/notes/x"}, `unsupported ref "refs/notes/x"`},
		{"pull_request without number", Event{Name: "pull_request", Ref: "refs/heads/x"}, "no pull request number"},
		{"merge_group without base", Event{Name: "merge_group", Ref: "refs/heads/x"}, "merge_group.base_ref"},
		{"workflow_run without payload", Event{Name: "workflow_run", Ref: "refs/heads/main"}, "no workflow_run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Derive(tt.ev, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestBuildName(t *testing.T) {
	tests := []struct{ name, platform, want string }{
		{"", "", "buildkit"},
		{"app", "", "app"},
		{"app", "linux/arm64", "app-linux-arm64"},
		{"", "linux/arm/v7", "buildkit-linux-arm-v7"},
		{"app", "linux/amd64,linux/arm64", "app-linux-amd64-linux-arm64"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"+"+tt.platform, func(t *testing.T) {
			if got := buildName(tt.name, tt.platform); got != tt.want {
				t.Errorf("buildName = %q, want %q", got, tt.want)
			}
		})
	}
	// Names that need sanitising get a hash, so "My_App" and "my-app" differ.
	if a, b := buildName("My_App", ""), buildName("my-app", ""); a == b || !strings.HasPrefix(a, "my-app--") {
		t.Errorf("buildName(My_App) = %q, buildName(my-app) = %q", a, b)
	}
}

func TestMatrixJobsDoNotShareScopes(t *testing.T) {
	ev := fixtureByName(t, "push branch").event(t)
	amd, err := Derive(ev, Options{Name: "app", Platform: "linux/amd64"})
	if err != nil {
		t.Fatal(err)
	}
	arm, err := Derive(ev, Options{Name: "app", Platform: "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := amd.Export.Name(amd.Build), arm.Export.Name(arm.Build); a == b {
		t.Fatalf("both platforms export to %q", a)
	}
	if got, want := amd.Imports[1].Name(amd.Build), "app-linux-amd64_develop"; got != want {
		t.Errorf("default branch name = %q, want %q", got, want)
	}
}
