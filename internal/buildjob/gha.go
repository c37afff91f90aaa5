package buildjob

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/config"
	"github.com/bkcache/bkcache/internal/runnerenv"
	"github.com/bkcache/bkcache/scope"
)

// ghaScopeName is the `scope=` of the first gha entry, "" when none.
func ghaScopeName(entries ...[]cacheentry.Entry) string {
	for _, set := range entries {
		for _, e := range set {
			if e.Type == cacheentry.TypeGHA {
				if s := e.Attrs["scope"]; s != "" {
					return s
				}
				return "buildkit"
			}
		}
	}
	return ""
}

// restClient is the GitHub REST client for cache reports and cleanup, or
// nil when there is no token or repository to talk about.
func restClient(cfg config.Config, getenv func(string) string) (*ghacache.REST, string, string, error) {
	owner, repo, ok := strings.Cut(getenv("GITHUB_REPOSITORY"), "/")
	if cfg.GitHubToken == "" || !ok {
		return nil, "", "", nil
	}
	api := getenv("GITHUB_API_URL")
	if api == "" {
		api = "https://api.github.com"
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	r, err := ghacache.NewREST(hc, api, cfg.GitHubToken)
	if err != nil {
		return nil, "", "", err
	}
	return r, owner, repo, nil
}

// reportGHAScopes says, before the build, which refs this build's gha
// import reads already hold a BuildKit cache index. It asks only about the
// refs the runtime token may read, since BuildKit's importer reads nothing
// else, and it says nothing when it cannot tell: a github-token without
// `actions: read` is common and no reason for a warning on every run.
func (j *job) reportGHAScopes(ctx context.Context, p planned) {
	name := ghaScopeName(p.cache.Imports)
	if name == "" {
		return
	}
	rest, owner, repo, err := restClient(j.cfg, j.getenv)
	if err != nil || rest == nil {
		return
	}
	readable := readableRefs(j.getenv("ACTIONS_RUNTIME_TOKEN"))
	var refs []string
	var scopes []scope.Scope
	for _, s := range p.scopes.Imports {
		if s.Ref != "" && readable[s.Ref] {
			refs = append(refs, s.Ref)
			scopes = append(scopes, s)
		}
	}
	if len(refs) == 0 {
		return
	}
	found, err := rest.ScopesWithCache(ctx, owner, repo, name, refs)
	if err != nil {
		j.rep.Debugf("gha: cannot tell which refs have a cache (github-token needs actions: read): %v", err)
		return
	}
	have := map[string]bool{}
	for _, f := range found {
		have[f.Ref] = true
		if f.Ref == "refs/heads/"+p.scopes.DefaultBranch {
			if w := expiryWarning(f.LastAccessedAt, time.Now()); w != "" {
				j.rep.Warnf("%s", w)
			}
		}
	}
	for _, s := range scopes {
		state := "no cache yet"
		if have[s.Ref] {
			state = "cache found"
		}
		j.rep.Infof("gha scope %s on %s (%s): %s", name, s.Ref, s.Reason, state)
	}
}

// readableRefs are the refs whose caches BuildKit's gha importer reads
// with this runtime token: every scope of its `ac` claim.
func readableRefs(token string) map[string]bool {
	scopes, _ := runnerenv.TokenScopes(token)
	refs := map[string]bool{}
	for _, s := range scopes {
		refs[s.Ref] = true
	}
	return refs
}

// afterBuild cleans up after a gha export when asked (cleanupExport).
func (j *job) afterBuild(ctx context.Context, p planned) error {
	name := ghaScopeName(p.cache.Exports)
	if !j.cfg.CacheCleanup || name == "" {
		return nil
	}
	rest, owner, repo, err := restClient(j.cfg, j.getenv)
	if err != nil || rest == nil {
		j.rep.Warnf("cache-cleanup: no GitHub REST client (%v): set github-token; until then superseded cache indexes, mount archives and build records are kept", err)
		return nil
	}
	// The ref the gha export wrote, by the same decision that kept it.
	ref, why := p.cache.Trust.GHAWriteRef(j.getenv("ACTIONS_RUNTIME_TOKEN"))
	if why != "" {
		j.rep.Warnf("cache-cleanup skipped: %s", why)
		return nil
	}
	j.withUsage(ctx, rest, owner, repo, func() { j.cleanupExport(ctx, rest, owner, repo, ref, name, p) })
	return nil
}

// postCleanup deletes a closed pull request's caches.
func postCleanup(ctx context.Context, j *job) error {
	if j.event.Name != "pull_request" && j.event.Name != "pull_request_target" {
		return nil
	}
	if action, _ := j.event.Payload["action"].(string); action != "closed" {
		return nil
	}
	num := fmt.Sprint(j.event.Payload["number"])
	rest, owner, repo, err := restClient(j.cfg, j.getenv)
	if err != nil {
		return err
	}
	if rest == nil {
		return fmt.Errorf("needs input %q and GITHUB_REPOSITORY", config.InputGitHubToken)
	}
	ref := "refs/pull/" + num + "/merge"
	var cleanupErr error
	j.withUsage(ctx, rest, owner, repo, func() {
		// A build of the pull request may still be running: what was read
		// within the sweep's grace stays (GitHub expires it after a week).
		n, freed, kept, err := rest.CleanupRef(ctx, owner, repo, ref, time.Now().Add(-ghacache.DefaultSweepGrace))
		if err != nil {
			cleanupErr = err
			return
		}
		j.rep.Infof("cache-cleanup: pull request #%s closed: deleted %d cache entries of %s (%s), kept %d read within the last %s", num, n, ref, bytesText(freed), kept, ghacache.DefaultSweepGrace)
	})
	return cleanupErr
}

// withUsage reports the repository's cache usage before and after fn.
func (j *job) withUsage(ctx context.Context, rest *ghacache.REST, owner, repo string, fn func()) {
	usage := func(when string) {
		n, b, err := rest.Usage(ctx, owner, repo)
		if err != nil {
			j.rep.Warnf("cache usage: %v", err)
			return
		}
		j.rep.Infof("cache usage %s: %d entries, %s", when, n, bytesText(b))
	}
	usage("before cleanup")
	fn()
	usage("after cleanup")
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
