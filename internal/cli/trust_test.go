package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/cacheentry"
)

// trustEvent is a real-shaped run (payloads in scope/testdata) with the
// runtime token GitHub would give it: write access to GITHUB_REF, read
// access to the default branch (and the PR base).
type trustEvent struct {
	name    string
	env     map[string]string
	payload string
	read    []string
}

const (
	hello = "Codertocat/Hello-World"
	octo  = "octo-org/octo-repo"
)

var trustEvents = []trustEvent{
	{"push branch", map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/feature/Login_Form", "GITHUB_REPOSITORY": hello}, "push_branch.json", []string{"refs/heads/develop"}},
	{"push default branch", map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/trunk", "GITHUB_REPOSITORY": octo}, "push_default_trunk.json", nil},
	{"push tag", map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/tags/v1.2.3", "GITHUB_REPOSITORY": hello}, "push_tag.json", []string{"refs/heads/develop"}},
	{"push deleted branch", map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/feature/old", "GITHUB_REPOSITORY": hello}, "push_deleted_branch.json", []string{"refs/heads/master"}},
	{"delete", map[string]string{"GITHUB_EVENT_NAME": "delete", "GITHUB_REF": "refs/heads/master", "GITHUB_REPOSITORY": hello}, "delete.json", nil},
	{"pull_request same repo", map[string]string{"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/17/merge", "GITHUB_HEAD_REF": "feature/login", "GITHUB_BASE_REF": "develop", "GITHUB_REPOSITORY": hello}, "pull_request_same_repo.json", []string{"refs/heads/develop"}},
	{"pull_request fork", map[string]string{"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/42/merge", "GITHUB_HEAD_REF": "main", "GITHUB_BASE_REF": "master", "GITHUB_REPOSITORY": hello}, "pull_request_fork.json", []string{"refs/heads/master"}},
	{"pull_request_target fork", map[string]string{"GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_REF": "refs/heads/master", "GITHUB_HEAD_REF": "main", "GITHUB_BASE_REF": "master", "GITHUB_REPOSITORY": hello}, "pull_request_target_fork.json", nil},
	{"pull_request_target same repo", map[string]string{"GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_REF": "refs/heads/develop", "GITHUB_HEAD_REF": "feature/login", "GITHUB_BASE_REF": "develop", "GITHUB_REPOSITORY": hello}, "pull_request_target_same_repo.json", nil},
	{"merge_group", map[string]string{"GITHUB_EVENT_NAME": "merge_group", "GITHUB_REF": "refs/heads/gh-readonly-queue/trunk/pr-104-929f8209d40f77f4abc622a499c93a83babdbe64", "GITHUB_REPOSITORY": octo}, "merge_group.json", []string{"refs/heads/trunk"}},
	{"workflow_dispatch", map[string]string{"GITHUB_EVENT_NAME": "workflow_dispatch", "GITHUB_REF": "refs/heads/release/2.x", "GITHUB_REPOSITORY": octo}, "workflow_dispatch.json", []string{"refs/heads/develop"}},
	{"schedule", map[string]string{"GITHUB_EVENT_NAME": "schedule", "GITHUB_REF": "refs/heads/develop", "GITHUB_REPOSITORY": octo}, "schedule.json", nil},
	{"repository_dispatch", map[string]string{"GITHUB_EVENT_NAME": "repository_dispatch", "GITHUB_REF": "refs/heads/develop", "GITHUB_REPOSITORY": octo}, "repository_dispatch.json", nil},
	{"release", map[string]string{"GITHUB_EVENT_NAME": "release", "GITHUB_REF": "refs/tags/v2.0.0", "GITHUB_REPOSITORY": hello}, "release.json", []string{"refs/heads/develop"}},
	{"workflow_run after push", map[string]string{"GITHUB_EVENT_NAME": "workflow_run", "GITHUB_REF": "refs/heads/develop", "GITHUB_REPOSITORY": octo}, "workflow_run_push.json", nil},
	{"workflow_run after same-repo PR", map[string]string{"GITHUB_EVENT_NAME": "workflow_run", "GITHUB_REF": "refs/heads/develop", "GITHUB_REPOSITORY": octo}, "workflow_run_pull_request.json", nil},
	{"workflow_run after fork PR", map[string]string{"GITHUB_EVENT_NAME": "workflow_run", "GITHUB_REF": "refs/heads/develop", "GITHUB_REPOSITORY": octo}, "workflow_run_fork.json", nil},
	{"issue_comment on PR", map[string]string{"GITHUB_EVENT_NAME": "issue_comment", "GITHUB_REF": "refs/heads/master", "GITHUB_REPOSITORY": hello}, "issue_comment_pr.json", nil},
}

const (
	trustRegistry = "127.0.0.1:5000/c"
	trustCacheURL = "http://127.0.0.1:1/"
)

// The inputs each event is planned with.
var trustInputs = []struct {
	name   string
	inputs map[string]string
}{
	{"default gha", nil},
	{"several cache lines", map[string]string{"cache": "type=registry,ref=" + trustRegistry + "\ntype=gha\ntype=local,dest=/tmp/bkc"}},
	{"explicit cache-from and cache-to", map[string]string{
		"cache-from": "type=registry,ref=" + trustRegistry + ":buildkit_master",
		"cache-to": "type=registry,ref=" + trustRegistry + ":buildkit_master\n" +
			"type=registry,ref=" + trustRegistry + ":buildkit_pr-42\n" +
			"type=registry,ref=" + trustRegistry + ":cache\n" +
			"type=gha,mode=max",
	}},
}

// expandWant spells out the short names of the expectations below as the
// exact, redacted entries: gha and xgha are the planned and an explicit
// gha export; reg:K, local:K the planned exports to scope K; xreg:K an
// explicit registry export to buildkit_K, xcache one to a tag bkcache
// does not name.
func expandWant(short []string) []string {
	var out []string
	for _, s := range short {
		kind, key, _ := strings.Cut(s, ":")
		switch kind {
		case "gha":
			out = append(out, "type=gha,scope=buildkit,ignore-error=true,mode=max")
		case "xgha":
			out = append(out, "type=gha,ignore-error=true,mode=max")
		case "reg":
			out = append(out, "type=registry,ref="+trustRegistry+":buildkit_"+key+",ignore-error=true,mode=max")
		case "local":
			out = append(out, "type=local,dest=/tmp/bkc/buildkit_"+key+",ignore-error=true,mode=max")
		case "xreg":
			out = append(out, "type=registry,ref="+trustRegistry+":buildkit_"+key+",ignore-error=true")
		case "xcache":
			out = append(out, "type=registry,ref="+trustRegistry+":cache,ignore-error=true")
		default:
			panic("unknown short entry " + s)
		}
	}
	return out
}

// TestFinalCacheTo runs the action in plan mode for every event, trust
// level and input shape, and checks the exact cache-to list handed to
// BuildKit (the cache-to output is that list as plan.Display shows it:
// redacted, without gha's runtime attributes), and that every
// entry left out is a warning naming it.
func TestFinalCacheTo(t *testing.T) {
	// want[event][allow-untrusted-export][input]: the final cache-to, for
	// the inputs default gha, several cache lines, explicit entries.
	type row = [2][3][]string
	lines := func(k string) []string { return []string{"reg:" + k, "gha", "local:" + k} }
	noGHA := func(k string) []string { return []string{"reg:" + k, "local:" + k} }
	trusted := func(k string) row {
		r := [3][]string{{"gha"}, lines(k), {"xgha"}}
		return row{r, r}
	}
	// The token writes another ref than the plan's export scope.
	tokenElsewhere := func(k string) row {
		r := [3][]string{nil, noGHA(k), nil}
		return row{r, r}
	}
	want := map[string]row{
		"push branch":                     trusted("feature-login-form--d51d2737"),
		"push default branch":             trusted("trunk"),
		"push tag":                        trusted("tag-v1.2.3"),
		"push deleted branch":             {},
		"delete":                          {},
		"pull_request same repo":          trusted("pr-17"),
		"pull_request fork":               {{}, {{"gha"}, lines("pr-42"), {"xreg:pr-42", "xgha"}}},
		"pull_request_target fork":        {{}, {nil, noGHA("pr-42"), {"xreg:pr-42"}}},
		"pull_request_target same repo":   {},
		"merge_group":                     tokenElsewhere("mq-trunk"),
		"workflow_dispatch":               trusted("release-2.x--d4c938d6"),
		"schedule":                        trusted("develop"),
		"repository_dispatch":             trusted("develop"),
		"release":                         trusted("tag-v2.0.0"),
		"workflow_run after push":         tokenElsewhere("feature-login--3de6205b"),
		"workflow_run after same-repo PR": tokenElsewhere("pr-2"),
		"workflow_run after fork PR":      {},
		"issue_comment on PR":             {},
	}
	for _, ev := range trustEvents {
		w, ok := want[ev.name]
		if !ok {
			t.Fatalf("no expectation for %s", ev.name)
		}
		for allowIdx, allow := range []string{"false", "true"} {
			for inIdx, in := range trustInputs {
				t.Run(ev.name+"/allow="+allow+"/"+in.name, func(t *testing.T) {
					r := trustRun(t, ev, allow, in.inputs)
					code, out, outputs := r.run(t)
					if code != 0 {
						t.Fatalf("exit %d\n%s", code, out)
					}
					got := nonEmptyLines(outputs["cache-to"])
					if exp := expandWant(w[allowIdx][inIdx]); !slices.Equal(got, exp) {
						t.Errorf("cache-to:\n  got  %q\n  want %q\n%s", got, exp, out)
					}
					// Imports are never dropped for trust, except that a
					// deleted ref reads nothing.
					from := outputs["cache-from"]
					deleted := ev.name == "push deleted branch" || ev.name == "delete"
					switch {
					case deleted && from != "":
						t.Errorf("deleted ref imports %q", from)
					case !deleted && inIdx == 2 && !strings.Contains(from, trustRegistry+":buildkit_master"):
						t.Errorf("explicit cache-from missing: %q", from)
					case !deleted && inIdx == 0 && !strings.HasPrefix(from, "type=gha,scope=buildkit"):
						t.Errorf("default gha import missing: %q", from)
					}
					// Each export the inputs ask for and the build does
					// not get is a warning naming it and the reason.
					var asked []string
					switch {
					case inIdx == 2:
						asked = []string{"xreg:master", "xreg:pr-42", "xcache", "xgha"}
					case ghaDroppedFor(ev.name, allow):
						asked = []string{"gha"}
					}
					for _, e := range expandWant(asked) {
						if slices.Contains(got, e) {
							continue
						}
						if !strings.Contains(out, "::warning::cache-to "+e+" dropped: ") {
							t.Errorf("no warning for the dropped %s\n%s", e, out)
						}
					}
				})
			}
		}
	}
}

// ghaDroppedFor: the plan exports, but the runtime token writes another
// ref, so the planned gha export is dropped.
func ghaDroppedFor(event, allow string) bool {
	switch event {
	case "merge_group", "workflow_run after push", "workflow_run after same-repo PR":
		return true
	case "pull_request_target fork":
		return allow == "true"
	}
	return false
}

func trustRun(t *testing.T, ev trustEvent, allow string, inputs map[string]string) *runnerEnv {
	t.Helper()
	in := map[string]string{"dry-run": "true", "allow-untrusted-export": allow}
	for k, v := range inputs {
		in[k] = v
	}
	r := newRunnerEnv(t, ev.env["GITHUB_EVENT_NAME"], ev.env["GITHUB_REF"], ev.payload, in)
	for k, v := range ev.env {
		r.vars[k] = v
	}
	tok, err := emulator.MintToken([]byte("trust-test"), emulator.TokenOptions{
		Repo: ev.env["GITHUB_REPOSITORY"], Write: ev.env["GITHUB_REF"], Read: ev.read,
		Now: time.Now(), TTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.vars["ACTIONS_RUNTIME_TOKEN"] = tok
	r.vars["ACTIONS_RESULTS_URL"] = trustCacheURL
	r.vars["ACTIONS_CACHE_SERVICE_V2"] = "true"
	r.vars["GITHUB_EVENT_PATH"] = filepath.Join("..", "..", "scope", "testdata", ev.payload)
	return r
}

func nonEmptyLines(s string) []string {
	return slices.DeleteFunc(strings.Split(s, "\n"), func(l string) bool { return strings.TrimSpace(l) == "" })
}

// TestSharedBuilderWarning: an untrusted run on a builder that outlives
// the job (detected from its address) gets a warning; trusted runs and
// ephemeral builders do not.
func TestSharedBuilderWarning(t *testing.T) {
	byName := map[string]trustEvent{}
	for _, ev := range trustEvents {
		byName[ev.name] = ev
	}
	for _, tt := range []struct {
		name, event, builder, buildkitHost string
		warn                               bool
	}{
		{"fork PR on tcp", "pull_request fork", "tcp://buildkitd:1234?cacert=/ca.pem", "", true},
		{"issue_comment on kube-pod via BUILDKIT_HOST", "issue_comment on PR", "", "kube-pod://buildkitd-0", true},
		{"fork PR on a unix socket", "pull_request fork", "unix:///run/buildkit/buildkitd.sock", "", false},
		{"input wins over BUILDKIT_HOST", "pull_request fork", "docker-container://b", "tcp://shared:1234", false},
		{"trusted push on tcp", "push branch", "tcp://buildkitd:1234", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := trustRun(t, byName[tt.event], "false", map[string]string{"builder": tt.builder})
			r.vars["BUILDKIT_HOST"] = tt.buildkitHost
			code, out, _ := r.run(t)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			got := strings.Contains(out, "::warning::untrusted") && strings.Contains(out, "long-lived builder")
			if got != tt.warn {
				t.Errorf("shared-builder warning = %v, want %v\n%s", got, tt.warn, out)
			}
			if strings.Contains(out, "cacert") {
				t.Errorf("the warning shows the builder's TLS query:\n%s", out)
			}
		})
	}
}

// TestDroppedInSummary: the job summary lists what was left out, redacted.
func TestDroppedInSummary(t *testing.T) {
	for _, ev := range trustEvents {
		if ev.name != "pull_request_target fork" {
			continue
		}
		r := trustRun(t, ev, "true", nil)
		if code, out, _ := r.run(t); code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		b, err := os.ReadFile(r.summary)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "dropped: untrusted build, and the gha exporter would write refs/heads/master") {
			t.Errorf("summary does not list the dropped gha export:\n%s", b)
		}
		if strings.Contains(string(b), r.vars["ACTIONS_RUNTIME_TOKEN"]) {
			t.Error("summary shows the runtime token")
		}
	}
}

// TestRecordFollowsExport: for every event, trust level and input shape,
// the build record is saved only where the final cache-to goes, and
// untrusted runs save none.
func TestRecordFollowsExport(t *testing.T) {
	for _, ev := range trustEvents {
		for _, allow := range []string{"false", "true"} {
			for _, in := range trustInputs {
				t.Run(ev.name+"/allow="+allow+"/"+in.name, func(t *testing.T) {
					code, out, outputs := trustRun(t, ev, allow, in.inputs).run(t)
					if code != 0 {
						t.Fatalf("exit %d\n%s", code, out)
					}
					exports := map[string]bool{}
					for _, l := range nonEmptyLines(outputs["cache-to"]) {
						e, err := cacheentry.ParseSyntax(l)
						if err != nil {
							t.Fatalf("cache-to line %q: %v", l, err)
						}
						exports[recordWhere(e)] = true
					}
					var line string
					for _, l := range strings.Split(out, "\n") {
						if strings.HasPrefix(l, "build record: ") {
							line = l
						}
					}
					if line == "" {
						t.Fatalf("no build record line:\n%s", out)
					}
					if _, save, ok := strings.Cut(line, "; save to "); ok && !exports[save] {
						t.Errorf("the record is saved to %q, which is no final export (%q)", save, outputs["cache-to"])
					}
				})
			}
		}
	}
}
