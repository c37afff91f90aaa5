package plan

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"

	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/runnerenv"
	"github.com/bkcache/bkcache/scope"
)

// Dropped is a cache entry left out of the build, and why.
type Dropped struct {
	Dir    cacheentry.Direction
	Entry  cacheentry.Entry
	Reason string
}

// String is the warning for the log: the entry, redacted, and the reason.
func (d Dropped) String() string {
	return fmt.Sprintf("%s %s dropped: %s", d.Dir, Display(d.Entry), d.Reason)
}

// Finalize turns p into exactly what BuildKit gets: gha entries get the
// runner's url, token and version (AddGitHubRuntime), gha entries still
// lacking them are dropped (BuildKit would fail the build on them), and
// EnforceTrust drops every export that would write where this build may
// not. Every entry left out is in Dropped with its reason, so the plan
// printed in a dry run is the build's. getenv reads the runner's
// variables; Finalize does no other I/O.
func Finalize(p Plan, getenv func(string) string) Plan {
	imports, inactiveIn := SplitInactive(AddGitHubRuntime(p.Imports, getenv))
	exports, inactiveOut := SplitInactive(AddGitHubRuntime(p.Exports, getenv))
	const noRuntime = "no ACTIONS_RUNTIME_TOKEN and cache URL; the runner passes them only to JavaScript and container actions, so use `uses: bkcache/bkcache@v1` rather than a run: step"
	for _, e := range inactiveIn {
		p.Dropped = append(p.Dropped, Dropped{cacheentry.Import, e, noRuntime})
	}
	for _, e := range inactiveOut {
		p.Dropped = append(p.Dropped, Dropped{cacheentry.Export, e, noRuntime})
	}
	var dropped []Dropped
	p.Imports, p.Exports, dropped = EnforceTrust(imports, exports, p.Scope, getenv("GITHUB_REF"))
	p.Dropped = append(p.Dropped, dropped...)
	return p
}

// EnforceTrust applies the safety rule to the final cache entries of a
// build, whatever their backend and whether they were planned from a
// `cache:` line or written as an explicit cache-to: an export survives only
// if the location it really writes is the plan's export scope.
//
//   - A deleted ref imports and exports nothing.
//   - gha writes the ref its runtime token may write (the `ac` claim of
//     the entry's token, else runnerRef, the job's GITHUB_REF), whatever
//     its scope= says. It is kept only when that ref is the export
//     scope's ref, and never for an untrusted plan when the ref is not a
//     pull request's own.
//   - A read-only plan (untrusted events without allow-untrusted-export,
//     pull_request_target of a same-repository PR, issue_comment,
//     workflow_run of untrusted code) keeps no export.
//   - Every other export must write the export scope by name: a registry
//     tag, a local directory or the s3/azblob names equal to
//     Scope.Name(Build), as a `cache:` line plans it. So an explicit
//     cache-to to a fixed tag ("…:cache") or to another ref's scope
//     ("…:buildkit_main" from a pull request) is dropped. Inline exports
//     write the build's own image: kept for trusted builds only, since
//     trusted builds import those tags.
//
// It is pure: the entries' tokens are parsed, never verified or logged.
func EnforceTrust(imports, exports []cacheentry.Entry, sp scope.Plan, runnerRef string) (keptImports, keptExports []cacheentry.Entry, dropped []Dropped) {
	if sp.Deleted {
		const why = "the ref was deleted: a deleted branch imports and exports nothing"
		for _, e := range imports {
			dropped = append(dropped, Dropped{cacheentry.Import, e, why})
		}
		for _, e := range exports {
			dropped = append(dropped, Dropped{cacheentry.Export, e, why})
		}
		return nil, nil, dropped
	}
	for _, e := range exports {
		if why := exportRefusal(e, sp, runnerRef); why != "" {
			dropped = append(dropped, Dropped{cacheentry.Export, e, why})
			continue
		}
		keptExports = append(keptExports, e)
	}
	return imports, keptExports, dropped
}

// exportRefusal says why e may not be exported under sp, or "".
func exportRefusal(e cacheentry.Entry, sp scope.Plan, runnerRef string) string {
	if e.Type == cacheentry.TypeGHA {
		return ghaRefusal(e, sp, runnerRef)
	}
	if sp.Export == nil {
		return readOnly(sp)
	}
	if e.Type == cacheentry.TypeInline {
		if sp.Trusted {
			return "" // it writes this build's own image
		}
		return fmt.Sprintf("untrusted build: inline cache travels in the image tags, which trusted builds import; only %s may be written", sp.Export.Name(sp.Build))
	}
	want := sp.Export.Name(sp.Build)
	names := scopeNames(e)
	if len(names) == 0 {
		return fmt.Sprintf("where it writes cannot be told, and a build writes only its export scope %s", want)
	}
	for _, n := range names {
		if n != want {
			return fmt.Sprintf("it writes %s, not this build's export scope %s (name the store in a cache: line and bkcache adds the scope)", strings.Join(names, ";"), want)
		}
	}
	return ""
}

func ghaRefusal(e cacheentry.Entry, sp scope.Plan, runnerRef string) string {
	w := runnerenv.WritableRef(e.Attrs["token"], runnerRef)
	switch {
	case w == "" && runnerenv.EmptyWriteScope(e.Attrs["token"]):
		return "the gha exporter writes the ref the runtime token may write, and this token's writable scope is empty (it names no ref)"
	case w == "":
		return "the gha exporter writes the ref the runtime token may write, and this token may write none"
	case sp.Export == nil:
		return fmt.Sprintf("%s, but the gha exporter would write %s, the ref the runtime token may write", readOnly(sp), w)
	case !sp.Trusted && !strings.HasPrefix(w, "refs/pull/"):
		return fmt.Sprintf("untrusted build, and the gha exporter would write %s (the ref the runtime token may write), which trusted builds read", w)
	case w != sp.Export.Ref:
		return fmt.Sprintf("the gha exporter writes %s (the ref the runtime token may write), not the planned export scope %s (%s)", w, sp.Export.Key, sp.Export.Ref)
	}
	return ""
}

func readOnly(sp scope.Plan) string {
	if sp.Trusted {
		return fmt.Sprintf("this %s run exports nothing", sp.Event)
	}
	return fmt.Sprintf("this %s run is untrusted and read-only (allow-untrusted-export lets fork pull requests write only their own pr-N scope)", sp.Event)
}

// scopeNames is the last part of where e writes, which the plan sets to
// a scope name: a registry tag, a local directory's name, the s3/azblob
// manifest names. nil when it cannot be told.
func scopeNames(e cacheentry.Entry) []string {
	a := e.Attrs
	switch e.Type {
	case cacheentry.TypeRegistry:
		named, err := reference.ParseNormalizedNamed(a["ref"])
		if err != nil {
			return nil
		}
		if _, digested := named.(reference.Digested); digested {
			return nil
		}
		if t, ok := reference.TagNameOnly(named).(reference.Tagged); ok {
			return []string{t.Tag()}
		}
	case cacheentry.TypeLocal:
		if a["dest"] != "" {
			return []string{filepath.Base(filepath.Clean(a["dest"]))}
		}
	case cacheentry.TypeS3, cacheentry.TypeAzblob:
		name := a["name"]
		if name == "" {
			name = "buildkit" // BuildKit's default
		}
		return strings.Split(name, ";")
	}
	return nil
}
