package cli

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/buildjob"
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
	// A trusted build keeps explicit cache-to lines as written.
	explicit := []string{"xreg:master", "xreg:pr-42", "xcache"}
	trusted := func(k string) row {
		r := [3][]string{{"gha"}, lines(k), append(explicit, "xgha")}
		return row{r, r}
	}
	// The token writes another ref than the plan's export scope.
	tokenElsewhere := func(k string) row {
		r := [3][]string{nil, noGHA(k), explicit}
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
	r.vars["GITHUB_REPOSITORY"] = ev.env["GITHUB_REPOSITORY"]
	r.vars["ACTIONS_RESULTS_URL"] = trustCacheURL
	r.vars["ACTIONS_CACHE_SERVICE_V2"] = "true"
	r.vars["GITHUB_EVENT_PATH"] = filepath.Join("..", "..", "scope", "testdata", ev.payload)
	return r
}

// mintToken is a runtime token of the emulator (GitHub's shape) that may
// write ref.
func mintToken(t *testing.T, ref string) string {
	t.Helper()
	tok, err := emulator.MintToken([]byte("trust-test"), emulator.TokenOptions{Repo: hello, Write: ref, Now: time.Now(), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
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

// untrustedEvents are the rows of trustEvents whose code may come from
// someone without write access.
var untrustedEvents = map[string]bool{
	"pull_request fork": true, "pull_request_target fork": true, "pull_request_target same repo": true,
	"workflow_run after fork PR": true, "issue_comment on PR": true,
}

// mountDockerfile is a build context whose Dockerfile has cache mounts.
func mountDockerfile(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	df := "FROM busybox\nRUN --mount=type=cache,id=gomod,target=/go/pkg/mod true\nRUN --mount=type=cache,target=/root/.cache/go-build true\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mountLine is the dry run's account of one cache mount.
var mountLine = regexp.MustCompile(`(?m)^cache mount [^\n]*?: restore from ([^\n]*?); (?:save to ([^\n]*)|no save: [^\n]*)$`)

// access is where a run reads and writes, as comparable location keys:
// BuildKit cache entries by their location, gha by repository, scope and
// ref (reads: every ref the token may read; writes: the one it may
// write), mount stores as the dry run names them (gha ones by ref too).
type access struct{ reads, writes []string }

func accessOf(t *testing.T, ev trustEvent, out, cacheFrom, cacheTo string) access {
	t.Helper()
	repo := ev.env["GITHUB_REPOSITORY"]
	readRefs := append([]string{ev.env["GITHUB_REF"]}, ev.read...)
	var a access
	entryLocs := func(line string, write bool) []string {
		dir := cacheentry.Import
		if write {
			dir = cacheentry.Export
		}
		e, err := cacheentry.Parse(line, dir)
		if err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		switch e.Type {
		case cacheentry.TypeGHA:
			if write {
				return []string{"gha " + repo + " " + e.Attrs["scope"] + " " + ev.env["GITHUB_REF"]}
			}
			var out []string
			for _, r := range readRefs {
				out = append(out, "gha "+repo+" "+e.Attrs["scope"]+" "+r)
			}
			return out
		case cacheentry.TypeLocal:
			return []string{"local " + filepath.Clean(e.Attrs["src"]+e.Attrs["dest"])}
		case cacheentry.TypeInline:
			return []string{"inline"}
		}
		return cacheentry.ExportLocations(e)
	}
	mountLocs := func(store string, write bool) []string {
		if !strings.HasPrefix(store, "gha ") {
			return []string{"mount " + store}
		}
		if write {
			return []string{"mount " + repo + " " + store + " " + ev.env["GITHUB_REF"]}
		}
		var out []string
		for _, r := range readRefs {
			out = append(out, "mount "+repo+" "+store+" "+r)
		}
		return out
	}
	for _, l := range nonEmptyLines(cacheFrom) {
		a.reads = append(a.reads, entryLocs(strings.TrimSpace(l), false)...)
	}
	for _, l := range nonEmptyLines(cacheTo) {
		a.writes = append(a.writes, entryLocs(strings.TrimSpace(l), true)...)
	}
	for _, m := range mountLine.FindAllStringSubmatch(out, -1) {
		for _, s := range strings.Split(m[1], ", then ") {
			a.reads = append(a.reads, mountLocs(s, false)...)
		}
		if m[2] != "" {
			a.writes = append(a.writes, mountLocs(m[2], true)...)
		}
	}
	return a
}

// cliArgs turns action inputs into the CLI's flags.
func cliArgs(inputs map[string]string) []string {
	var args []string
	for _, k := range slices.Sorted(maps.Keys(inputs)) {
		switch k {
		case "dry-run", "context":
			continue
		case "push", "allow-untrusted-export":
			args = append(args, "--"+k+"="+inputs[k])
			continue
		}
		for _, l := range nonEmptyLines(inputs[k]) {
			args = append(args, "--"+k, l)
		}
	}
	return args
}

// TestNoUntrustedWrite is the rule over every write path: for each event
// of TestFinalCacheTo, with and without allow-untrusted-export, each
// input shape (an inline cache line too, whose cache mounts fall back to
// gha), a Dockerfile with cache mounts, run as the action and as the CLI
// inside the job (with and without --ref and --event): no untrusted run
// writes a location that a trusted run reads.
func TestNoUntrustedWrite(t *testing.T) {
	ctxDir := mountDockerfile(t)
	inputs := append(slices.Clone(trustInputs), struct {
		name   string
		inputs map[string]string
	}{"inline, mounts fall back to gha", map[string]string{"cache": "type=inline", "tags": trustRegistry + "-img:1", "push": "true"}})
	// How each run is started: the action, or `bkcache build --dry-run`
	// in a run: step of the job, with flags that try to raise trust.
	type how struct {
		name string
		args func(ev trustEvent) []string
	}
	hows := []how{
		{"action", nil},
		{"cli", func(trustEvent) []string { return []string{} }},
		{"cli --ref of the job", func(ev trustEvent) []string { return []string{"--ref", ev.env["GITHUB_REF"]} }},
		{"cli --ref default branch", func(trustEvent) []string { return []string{"--ref", "refs/heads/master"} }},
		{"cli --event push --ref default branch", func(trustEvent) []string {
			return []string{"--event", "push", "--ref", "refs/heads/master"}
		}},
	}
	type result struct {
		name string
		acc  access
	}
	var trusted, untrusted []result
	for _, ev := range trustEvents {
		for _, allow := range []string{"false", "true"} {
			for _, in := range inputs {
				for _, h := range hows {
					if h.args != nil && !untrustedEvents[ev.name] {
						continue // trusted runs give the reads: as the action
					}
					name := ev.name + "/allow=" + allow + "/" + in.name + "/" + h.name
					r := trustRun(t, ev, allow, in.inputs)
					r.vars["INPUT_CONTEXT"] = ctxDir
					var code int
					var out, from, to string
					if h.args == nil {
						var outputs map[string]string
						code, out, outputs = r.run(t)
						from, to = outputs["cache-from"], outputs["cache-to"]
					} else {
						args := append([]string{"build", ctxDir, "--dry-run"}, h.args(ev)...)
						code, out, _ = r.run(t, append(args, cliArgs(in.inputs)...)...)
						from, to = cliOutput(out, "cache-from"), cliOutput(out, "cache-to")
					}
					if code != 0 {
						// Only the CLI's refusal of flags that differ from
						// the job's event may stop a run here.
						if h.args == nil || !strings.Contains(out, "inside a GitHub Actions job the cache plan comes from the job's own event") {
							t.Fatalf("%s: exit %d\n%s", name, code, out)
						}
						if strings.Contains(h.name, "of the job") {
							t.Errorf("%s: the job's own ref was refused\n%s", name, out)
						}
						continue
					}
					if strings.Contains(h.name, "default branch") && ev.env["GITHUB_REF"] != "refs/heads/master" {
						t.Errorf("%s: --ref %s in a job on %s was not refused\n%s", name, "refs/heads/master", ev.env["GITHUB_REF"], out)
					}
					if !strings.Contains(out, "cache mount gomod (/go/pkg/mod)") && !strings.HasPrefix(ev.name, "delete") && ev.name != "push deleted branch" {
						t.Errorf("%s: no cache mount in the plan\n%s", name, out)
					}
					res := result{name, accessOf(t, ev, out, from, to)}
					if untrustedEvents[ev.name] {
						untrusted = append(untrusted, res)
					} else {
						trusted = append(trusted, res)
					}
				}
			}
		}
	}
	reads := map[string]string{}
	for _, r := range trusted {
		for _, l := range r.acc.reads {
			reads[l] = r.name
		}
	}
	if len(reads) < 20 {
		t.Fatalf("only %d trusted read locations: the table reads too little to prove anything", len(reads))
	}
	writes := 0
	for _, r := range untrusted {
		for _, w := range r.acc.writes {
			writes++
			if by, ok := reads[w]; ok {
				t.Errorf("untrusted %s writes %s, which trusted %s reads", r.name, w, by)
			}
		}
	}
	// allow-untrusted-export lets fork PRs write their own scope: the
	// check above must have had writes to look at.
	if writes == 0 {
		t.Error("no untrusted run wrote anything: the check checked nothing")
	}
}

// cliOutput reads one `name: value` block of the CLI's result.
func cliOutput(out, name string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if v, ok := strings.CutPrefix(l, name+": "); ok {
			return v
		}
		if l == name+":" {
			var vals []string
			for _, c := range lines[i+1:] {
				if !strings.HasPrefix(c, "  ") {
					break
				}
				vals = append(vals, strings.TrimSpace(c))
			}
			return strings.Join(vals, "\n")
		}
	}
	return ""
}

// TestCLIInsideJob: in a run: step of a job, the CLI plans the job's own
// event; --ref and --event that differ from it are refused with an error
// naming the job's event, and outside a job they are the event.
func TestCLIInsideJob(t *testing.T) {
	byName := map[string]trustEvent{}
	for _, ev := range trustEvents {
		byName[ev.name] = ev
	}
	cache := []string{"--cache", "type=registry,ref=" + trustRegistry}
	for _, tt := range []struct {
		name, event string
		inJob       bool
		args        []string
		code        int
		want        string
	}{
		{"fork pull_request_target raising to a push of master", "pull_request_target fork", true, []string{"--event", "push"}, 1,
			`error: --event "push": inside a GitHub Actions job the cache plan comes from the job's own event (pull_request_target on refs/heads/master), which sets what this build may write; remove --event "push"`},
		{"fork PR naming the default branch", "pull_request fork", true, []string{"--ref", "master"}, 1,
			`error: --ref "master": inside a GitHub Actions job the cache plan comes from the job's own event (pull_request on refs/pull/42/merge)`},
		{"both flags named", "issue_comment on PR", true, []string{"--ref", "refs/heads/develop", "--event", "push"}, 1,
			`--ref "refs/heads/develop" and --event "push": inside a GitHub Actions job`},
		{"the job's own ref is the job's event, untrusted", "pull_request_target fork", true, []string{"--ref", "refs/heads/master"}, 0,
			"build \"buildkit\" (untrusted)\n  export scope: none (read-only)"},
		{"no flags: the job's event", "push default branch", true, nil, 0, "cache-to: type=registry,ref=" + trustRegistry + ":buildkit_trunk"},
		{"outside a job --ref is the event", "pull_request fork", false, []string{"--ref", "refs/heads/master", "--default-branch", "master"}, 0,
			"cache-to: type=registry,ref=" + trustRegistry + ":buildkit_master"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := trustRun(t, byName[tt.event], "false", nil)
			if !tt.inJob {
				for _, k := range []string{"GITHUB_ACTIONS", "GITHUB_EVENT_PATH", "GITHUB_EVENT_NAME", "GITHUB_REF"} {
					delete(r.vars, k)
				}
			}
			code, out, _ := r.run(t, append(append([]string{"plan"}, tt.args...), cache...)...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s", code, tt.code, tt.want, out)
			}
			if tt.code == 0 && tt.inJob && tt.event != "push default branch" && strings.Contains(out, "cache-to:") {
				t.Errorf("an untrusted job exports:\n%s", out)
			}
		})
	}
}

// TestSharedLocationHint: a trusted build off the default branch whose
// explicit cache-to writes what the default branch reads (here the tag
// it also imports) keeps it and gets one note with the cache: line; the
// default branch's own build gets none.
func TestSharedLocationHint(t *testing.T) {
	byName := map[string]trustEvent{}
	for _, ev := range trustEvents {
		byName[ev.name] = ev
	}
	shared := map[string]string{
		"cache-from": "type=registry,ref=" + trustRegistry + ":buildcache",
		"cache-to":   "type=registry,ref=" + trustRegistry + ":buildcache,mode=max\ntype=registry,ref=" + trustRegistry + ":other",
	}
	for _, tt := range []struct {
		event string
		hints int
	}{
		{"push branch", 1},
		{"pull_request same repo", 1},
		{"push default branch", 0},
	} {
		t.Run(tt.event, func(t *testing.T) {
			code, out, outputs := trustRun(t, byName[tt.event], "false", shared).run(t)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			if got := nonEmptyLines(outputs["cache-to"]); len(got) != 2 {
				t.Errorf("cache-to %q: want both entries kept as written", got)
			}
			if n := strings.Count(out, "writes where the default branch"); n != tt.hints {
				t.Errorf("%d hints, want %d\n%s", n, tt.hints, out)
			}
			want := "note: cache-to type=registry,ref=" + trustRegistry + ":buildcache,ignore-error=true,mode=max writes where the default branch"
			if tt.hints == 1 && (!strings.Contains(out, want) || !strings.Contains(out, "`cache: type=registry,ref="+trustRegistry+",mode=max` instead")) {
				t.Errorf("the hint does not name the entry and the cache: line\n%s", out)
			}
			if strings.Contains(out, ":other,ignore-error=true writes where") {
				t.Errorf("a tag the default branch does not read got a hint\n%s", out)
			}
		})
	}
}

// TestLocalSymlinkIntoTrustedScope: a fork's pull request (with
// allow-untrusted-export) whose cache-to names its own scope's directory,
// which is a symlink into the default branch's, is dropped: local
// locations are compared as they are on disk.
func TestLocalSymlinkIntoTrustedScope(t *testing.T) {
	var fork trustEvent
	for _, ev := range trustEvents {
		if ev.name == "pull_request fork" {
			fork = ev
		}
	}
	root := t.TempDir()
	mainDir := filepath.Join(root, "cache", "buildkit_master")
	links := filepath.Join(root, "links")
	for _, d := range []string{mainDir, links} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(mainDir, filepath.Join(links, "buildkit_pr-42")); err != nil {
		t.Fatal(err)
	}
	// A parent that is a link is resolved too, and a directory that does
	// not exist yet is judged by its parent.
	if err := os.Symlink(filepath.Join(root, "cache"), filepath.Join(root, "cachelink")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dest string
		kept bool
	}{
		{filepath.Join(links, "buildkit_pr-42"), false},
		{filepath.Join(root, "cachelink", "buildkit_pr-42"), true},
		{filepath.Join(root, "cachelink", "buildkit_master"), false},
		{filepath.Join(root, "cache", "x", "..", "buildkit_pr-42"), true},
	} {
		t.Run(tt.dest, func(t *testing.T) {
			code, out, outputs := trustRun(t, fork, "true", map[string]string{"cache-to": "type=local,dest=" + tt.dest}).run(t)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			if kept := outputs["cache-to"] != ""; kept != tt.kept {
				t.Errorf("kept = %v, want %v\n%s", kept, tt.kept, out)
			}
			if !tt.kept && !strings.Contains(out, "untrusted build: it writes local dest "+mainDir) {
				t.Errorf("the warning does not name the directory on disk\n%s", out)
			}
		})
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
						exports[buildjob.RecordWhere(e)] = true
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
