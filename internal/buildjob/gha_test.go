package buildjob

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/config"
	"github.com/bkcache/bkcache/internal/ghaction"
	"github.com/bkcache/bkcache/scope"
)

// The gha scope report asks only about refs the runtime token can read, and
// a github-token the API refuses is no warning.
func TestReportGHAScopes(t *testing.T) {
	const restToken = "ghs_report0123456789"
	emu, err := emulator.New(emulator.Config{Secret: []byte("0123456789abcdef0123456789abcdef"), Blobs: emulator.NewMemoryStore(), RESTToken: restToken})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	defer srv.Close()
	// A push to a feature branch whose token reads only that branch: main's
	// import is planned, but the token cannot read it.
	tok, err := emu.Token(emulator.TokenOptions{Repo: "o/r", Write: "refs/heads/feature", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, githubToken string
		want, not         []string
	}{
		{
			name: "token with actions: read", githubToken: restToken,
			want: []string{"gha scope buildkit on refs/heads/feature (this branch): no cache yet"},
			not:  []string{"refs/heads/main", "::warning::"},
		},
		{
			name: "token the API refuses", githubToken: "ghs_wrong",
			want: []string{"::debug::gha: cannot tell which refs have a cache"},
			not:  []string{"::warning::", "gha scope"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{
				"ACTIONS_RUNTIME_TOKEN": tok,
				"GITHUB_REPOSITORY":     "o/r",
				"GITHUB_API_URL":        srv.URL + "/api/v3",
				"ACTIONS_RESULTS_URL":   srv.URL + "/",
			}
			getenv := func(k string) string { return env[k] }
			var out bytes.Buffer
			j := &job{
				cfg:    config.Config{GitHubToken: tc.githubToken, DefaultBranch: "main"},
				event:  scope.Event{Name: "push", Ref: "refs/heads/feature"},
				getenv: getenv,
				rep:    &actionReporter{r: ghaction.New(getenv, &out)},
			}
			p, err := j.plan()
			if err != nil {
				t.Fatal(err)
			}
			j.reportGHAScopes(context.Background(), p)
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, out.String())
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out.String(), n) {
					t.Errorf("log has %q:\n%s", n, out.String())
				}
			}
		})
	}
}

func TestReadableRefs(t *testing.T) {
	emu, err := emulator.New(emulator.Config{Secret: []byte("0123456789abcdef0123456789abcdef"), Blobs: emulator.NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := emu.Token(emulator.TokenOptions{Repo: "o/r", Write: "refs/pull/1/merge", Read: []string{"refs/heads/main"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got := readableRefs(tok)
	if len(got) != 2 || !got["refs/pull/1/merge"] || !got["refs/heads/main"] {
		t.Errorf("readableRefs = %v", got)
	}
	if len(readableRefs("not-a-token")) != 0 {
		t.Error("a malformed token has readable refs")
	}
}
