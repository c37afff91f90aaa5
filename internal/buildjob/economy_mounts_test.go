package buildjob

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/config"
	"github.com/bkcache/bkcache/internal/ghaction"
	"github.com/bkcache/bkcache/scope"
)

// TestAfterBuildPrunesMounts: with cache-cleanup and a github-token, a
// push's cleanup deletes the superseded archive of a cache mount on its
// ref and the summary shows the archives' share; without the token it
// says once that they are kept.
func TestAfterBuildPrunesMounts(t *testing.T) {
	const restToken = "ghs_mounts0123456789"
	const mainRef = "refs/heads/main"
	for _, tc := range []struct {
		name, githubToken string
		wantLeft          int
		want              []string // in the log
		wantSummary       string
	}{
		{
			name: "with a token", githubToken: restToken, wantLeft: 1,
			want:        []string{"deleted 1 superseded cache mount archives and build records on"},
			wantSummary: "; cache mount archives 1.5 KiB (100% of used)",
		},
		{
			name: "without a token", wantLeft: 2,
			want: []string{"::warning::cache-cleanup: no GitHub REST client", "mount archives and build records are kept"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			now := time.Now()
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Millisecond); return now }
			mem := emulator.NewMemoryStore()
			blobSrv := httptest.NewServer(mem)
			defer blobSrv.Close()
			mem.URL = blobSrv.URL
			emu, err := emulator.New(emulator.Config{Secret: []byte("0123456789abcdef0123456789abcdef"), Blobs: mem, RESTToken: restToken, Now: clock})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(emu)
			defer srv.Close()
			tok, err := emu.Token(emulator.TokenOptions{Repo: "o/r", Write: mainRef, TTL: 24 * time.Hour, Now: clock()})
			if err != nil {
				t.Fatal(err)
			}
			c, err := ghacache.NewClient(ghacache.Config{ResultsURL: srv.URL + "/", Token: tok, ServiceV2: true})
			if err != nil {
				t.Fatal(err)
			}
			// Two saves of one mount, two hours apart: the older is
			// superseded and nobody read it since.
			for i := range 2 {
				key := ghacache.MountKey("buildkit", "gomod", clock())
				data := strings.Repeat("x", 1536)
				if err := c.Save(context.Background(), key, ghacache.MountVersion, strings.NewReader(data), int64(len(data))); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					mu.Lock()
					now = now.Add(2 * time.Hour)
					mu.Unlock()
				}
			}
			summary := filepath.Join(t.TempDir(), "summary.md")
			env := map[string]string{
				"ACTIONS_RUNTIME_TOKEN": tok,
				"GITHUB_REPOSITORY":     "o/r",
				"GITHUB_API_URL":        srv.URL + "/api/v3",
				"ACTIONS_RESULTS_URL":   srv.URL + "/",
				"GITHUB_STEP_SUMMARY":   summary,
			}
			getenv := func(k string) string { return env[k] }
			var out bytes.Buffer
			j := &job{
				cfg:    config.Config{GitHubToken: tc.githubToken, DefaultBranch: "main", CacheCleanup: true},
				event:  scope.Event{Name: "push", Ref: mainRef},
				getenv: getenv,
				rep:    &actionReporter{r: ghaction.New(getenv, &out)},
			}
			p, err := j.plan()
			if err != nil {
				t.Fatal(err)
			}
			if err := j.afterBuild(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			left := 0
			for _, e := range emu.Entries("o/r") {
				if strings.HasPrefix(e.Key, ghacache.MountKeyPrefix) {
					left++
				}
			}
			if left != tc.wantLeft {
				t.Errorf("%d mount entries left, want %d:\n%s", left, tc.wantLeft, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, out.String())
				}
			}
			md, _ := os.ReadFile(summary)
			if !strings.Contains(string(md), tc.wantSummary) || (tc.wantSummary == "") != !strings.Contains(string(md), "**Actions cache**") {
				t.Errorf("summary lacks %q:\n%s", tc.wantSummary, md)
			}
		})
	}
}
