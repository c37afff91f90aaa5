package ghaaction

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/testenv"
)

// TestActionExplainsMisses: with the default store (gha), a push saves a
// build record next to the cache; the next push, on a fresh builder, names
// the file it changed as the cause of its first miss, in the log, the
// job summary and the cache-miss-reason output; a fork PR reads main's
// record, names its secret build-arg without showing it, and writes none.
func TestActionExplainsMisses(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	s := startEmulator(t, 1)
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", fmt.Sprintf("FROM %s\nARG NPM_TOKEN\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy && echo %s\n", env.BaseImage, testenv.RandomHex(8)))
	write("a.txt", "first")

	for _, tc := range []struct {
		name    string
		ev      event
		token   []string
		change  func()
		inputs  []string
		reason  string
		summary string
		secret  string
	}{
		{
			name:   "first push: nothing to compare with",
			ev:     pushMain,
			token:  []string{mainRef},
			reason: "nothing to compare with: no build record in the scopes tried (gha buildkit)",
		},
		{
			name:    "push after a change to a.txt",
			ev:      pushMain,
			token:   []string{mainRef},
			change:  func() { write("a.txt", "second") },
			reason:  "COPY a.txt /a.txt: context file changed a.txt",
			summary: "**Why it missed**\n\n- COPY a.txt /a.txt: context file changed a.txt\n",
		},
		{
			name:   "fork PR with a secret build-arg",
			ev:     prFork,
			token:  []string{forkRef, mainRef},
			inputs: []string{"build-args", "NPM_TOKEN=npm_Fork0123456789abcdefABCDEF"},
			reason: "RUN cat /a.txt > /copy && echo ",
			secret: "npm_Fork0123456789abcdefABCDEF",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.change != nil {
				tc.change()
			}
			before := describe(s.emu.Entries(repo))
			r := runAction(t, s, s.token(t, tc.token[0], tc.token[1:]...), tc.ev, buildInputs(testenv.NewBuildkitd(t), dir, tc.inputs...))
			mustSucceed(t, r)
			got := r.outputs["cache-miss-reason"]
			if tc.secret != "" {
				checkNoLeak(t, "secret build-arg", tc.secret, r)
				want := ": build-arg changed: NPM_TOKEN (unset) → *** (secret, hash "
				if !strings.HasPrefix(got, tc.reason) || !strings.Contains(got, want) {
					t.Errorf("cache-miss-reason = %q, want %q…%q…\n%s", got, tc.reason, want, r.stdout)
				}
				if after := describe(s.emu.Entries(repo)); after != before {
					t.Errorf("the fork PR wrote to the cache service:\nbefore:\n%safter:\n%s", before, after)
				}
			} else if got != tc.reason {
				t.Errorf("cache-miss-reason = %q, want %q\n%s", got, tc.reason, r.stdout)
			}
			if !strings.Contains(r.stdout, "why it missed: "+got+"\n") {
				t.Errorf("the log does not name the cause %q:\n%s", got, r.stdout)
			}
			if tc.summary != "" && !strings.Contains(r.files["GITHUB_STEP_SUMMARY"], tc.summary) {
				t.Errorf("the job summary lacks %q:\n%s", tc.summary, r.files["GITHUB_STEP_SUMMARY"])
			}
			if tc.ev == pushMain && !strings.Contains(r.stdout, "build record saved to gha buildkit (") {
				t.Errorf("the push saved no record:\n%s", r.stdout)
			}
		})
	}
}
