package plan

import (
	"strings"

	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/runnerenv"
)

// AddGitHubRuntime returns a copy of entries in which every gha entry gets
// what the runner supplies, unless the user set it: token
// (ACTIONS_RUNTIME_TOKEN); version, url_v2 and url by the toolkit's rule
// (runnerenv.CacheServiceV2): for v2, version=2 and url_v2 at
// ACTIONS_RESULTS_URL; for v1, version=1 and url at ACTIONS_CACHE_URL, else
// ACTIONS_RESULTS_URL. It is buildx's addGithubToken (build/opt.go) with
// getenv injected, except that the version is always written: BuildKit
// guesses a missing one from the URL, and bkcache's own client
// (ghacache.ConfigFromEnv) must speak the protocol BuildKit does. Mask the
// result's secrets (cacheentry.Secrets) before logging anything.
func AddGitHubRuntime(entries []cacheentry.Entry, getenv func(string) string) []cacheentry.Entry {
	out := make([]cacheentry.Entry, 0, len(entries))
	for _, e := range entries {
		e = e.Clone()
		if e.Type == cacheentry.TypeGHA {
			fillGHA(e.Attrs, getenv)
		}
		out = append(out, e)
	}
	return out
}

func fillGHA(a map[string]string, getenv func(string) string) {
	setUnset := func(k, v string) {
		if _, ok := a[k]; !ok && v != "" {
			a[k] = v
		}
	}
	version, userSet := a["version"]
	if !userSet {
		version = "1"
		// A url_v2 the user wrote asks for v2, as BuildKit reads it.
		if _, ok := a["url_v2"]; ok || runnerenv.CacheServiceV2(getenv) {
			version = "2"
		}
	}
	setUnset("token", getenv("ACTIONS_RUNTIME_TOKEN"))
	results := strings.TrimSpace(getenv("ACTIONS_RESULTS_URL"))
	if version == "2" {
		setUnset("url_v2", results)
	}
	cacheURL := strings.TrimSpace(getenv("ACTIONS_CACHE_URL"))
	if cacheURL == "" {
		cacheURL = results
	}
	setUnset("url", cacheURL)
	if !userSet && (a["url"] != "" || a["url_v2"] != "") {
		a["version"] = version
	}
}

// CacheServiceV2 reports whether the runner's cache service speaks v2;
// see runnerenv.CacheServiceV2 for the rules.
func CacheServiceV2(getenv func(string) string) bool { return runnerenv.CacheServiceV2(getenv) }

// SplitInactive separates the gha entries that still lack a token or a
// URL after AddGitHubRuntime (not on a runner, or the runtime variables
// were not passed): BuildKit would fail on them. buildx drops them
// silently (isActive); the caller should drop them with a warning.
func SplitInactive(entries []cacheentry.Entry) (active, inactive []cacheentry.Entry) {
	for _, e := range entries {
		a := e.Attrs
		if e.Type == cacheentry.TypeGHA && (a["token"] == "" || (a["url"] == "" && a["url_v2"] == "")) {
			inactive = append(inactive, e)
			continue
		}
		active = append(active, e)
	}
	return active, inactive
}

// SecretValues lists the values to mask in everything p holds, the
// dropped entries included.
func (p Plan) SecretValues() []string {
	out := cacheentry.Secrets(p.Imports, p.Exports)
	for _, d := range p.Dropped {
		out = append(out, d.Entry.Secrets()...)
	}
	return out
}

// runtimeKeys are the gha attributes AddGitHubRuntime fills in from the
// runner: BuildKit needs them, a reader of the log, outputs or summary
// does not (and the token must never be printed).
var runtimeKeys = []string{"token", "url", "url_v2", "version"}

// Display is how an entry is shown to people and in outputs: redacted, and
// for gha without the runtime attributes, so it reads like the cache line
// the user would write.
func Display(e cacheentry.Entry) string {
	if e.Type == cacheentry.TypeGHA {
		e = e.Clone()
		for _, k := range runtimeKeys {
			delete(e.Attrs, k)
		}
	}
	return e.Redacted()
}
