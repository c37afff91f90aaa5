package plan

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
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
	p.Imports, p.Exports, dropped = EnforceTrust(imports, exports, p.Trust)
	p.Dropped = append(p.Dropped, dropped...)
	p.Notes = append(p.Notes, p.Trust.SharedHints(p.Imports, p.Exports)...)
	return p
}

// Trust is the one trust decision of a build: every write, whether a
// cache-to entry handed to BuildKit, a cache mount archive or a store
// bkcache writes itself (the gha data plane's index), asks WriteRefusal.
type Trust struct {
	Scope scope.Plan
	// Repository is owner/name: bkcache puts it into s3 and azblob
	// locations that name no prefix (see RepositoryPrefix).
	Repository string
	// Resolve gives a local path as it is on disk: absolute, symlinks
	// resolved. Resolving is I/O, so the caller passes it in; nil takes
	// the path as written (cleaned).
	Resolve func(string) string
}

// EnforceTrust applies the safety rule to the final cache entries of a
// build, whatever their backend and whether they were planned from a
// `cache:` line or written as an explicit cache-to: an export survives only
// if t.WriteRefusal allows it. A deleted ref imports and exports nothing.
// It is pure: the entries' tokens are parsed, never verified or logged.
func EnforceTrust(imports, exports []cacheentry.Entry, t Trust) (keptImports, keptExports []cacheentry.Entry, dropped []Dropped) {
	if t.Scope.Deleted {
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
		if why := t.WriteRefusal(e); why != "" {
			dropped = append(dropped, Dropped{cacheentry.Export, e, why})
			continue
		}
		keptExports = append(keptExports, e)
	}
	return imports, keptExports, dropped
}

// WriteRefusal says why this build may not write e, or "" when it may.
//
//   - A deleted ref or a read-only plan (untrusted events without
//     allow-untrusted-export, pull_request_target of a same-repository PR,
//     issue_comment, workflow_run of untrusted code) writes nothing.
//   - gha writes the ref its runtime token may write (the `ac` claim),
//     whatever its scope= says: it is allowed only when that ref is the
//     export scope's ref (GHAWriteRef). A token whose claim is unreadable
//     or ambiguous writes nothing.
//   - A trusted build writes every other entry as written: an explicit
//     cache-to is the user's choice (SharedHints says when it writes where
//     the default branch reads).
//   - An untrusted build (a fork's PR with allow-untrusted-export) writes
//     only the whole location a cache: line would plan for its export
//     scope in that store: the registry repository with the scope's tag,
//     the local directory (after symlinks) named for the scope, the
//     bucket/container, endpoint, prefixes (with the repository when none
//     is set) and the scope's name. Never inline cache: it travels in
//     image tags trusted builds import.
func (t Trust) WriteRefusal(e cacheentry.Entry) string {
	sp := t.Scope
	if sp.Deleted {
		return "the ref was deleted: a deleted branch imports and exports nothing"
	}
	if e.Type == cacheentry.TypeGHA {
		_, why := t.GHAWriteRef(e.Attrs["token"])
		return why
	}
	if sp.Export == nil {
		return readOnly(sp)
	}
	if sp.Trusted {
		return ""
	}
	if e.Type == cacheentry.TypeInline {
		return fmt.Sprintf("untrusted build: inline cache travels in the image tags, which trusted builds import; only %s may be written", sp.Export.Name(sp.Build))
	}
	got := t.Locations(e)
	want := t.Locations(t.ownScope(e))
	if len(got) == 0 || len(want) == 0 {
		return fmt.Sprintf("where it writes cannot be told, and an untrusted build writes only its export scope %s", sp.Export.Name(sp.Build))
	}
	if !slices.Equal(got, want) {
		return fmt.Sprintf("untrusted build: it writes %s, not %s, this build's export scope %s in that store (name the store in a cache: line and bkcache adds the scope)",
			strings.Join(got, "; "), strings.Join(want, "; "), sp.Export.Name(sp.Build))
	}
	return ""
}

// GHAWriteRef is the ref a gha write with this runtime token goes to, and
// why it may not happen ("" when it may): the token must name exactly one
// writable ref, and it must be the export scope's ref (a pull request's
// own for an untrusted build).
func (t Trust) GHAWriteRef(token string) (ref, refusal string) {
	sp := t.Scope
	w, err := runnerenv.WritableRef(token)
	switch {
	case sp.Deleted:
		return "", "the ref was deleted: a deleted branch imports and exports nothing"
	case err != nil:
		return "", "gha writes nothing: " + err.Error()
	case w == "" && runnerenv.EmptyWriteScope(token):
		return "", "the gha exporter writes the ref the runtime token may write, and this token's writable scope is empty (it names no ref)"
	case w == "":
		return "", "the gha exporter writes the ref the runtime token may write, and this token may write none"
	case sp.Export == nil:
		return "", fmt.Sprintf("%s, but the gha exporter would write %s, the ref the runtime token may write", readOnly(sp), w)
	case !sp.Trusted && !strings.HasPrefix(w, "refs/pull/"):
		return "", fmt.Sprintf("untrusted build, and the gha exporter would write %s (the ref the runtime token may write), which trusted builds read", w)
	case w != sp.Export.Ref:
		return "", fmt.Sprintf("the gha exporter writes %s (the ref the runtime token may write), not the planned export scope %s (%s)", w, sp.Export.Key, sp.Export.Ref)
	}
	return w, ""
}

func readOnly(sp scope.Plan) string {
	if sp.Trusted {
		return fmt.Sprintf("this %s run exports nothing", sp.Event)
	}
	return fmt.Sprintf("this %s run is untrusted and read-only (allow-untrusted-export lets fork pull requests write only their own pr-N scope)", sp.Event)
}

// Locations are the whole places e writes (or reads), comparable across
// entries: cacheentry.ExportLocations, with a local directory as it is on
// disk (t.Resolve). nil when it cannot be told (a registry ref by digest).
func (t Trust) Locations(e cacheentry.Entry) []string {
	switch e.Type {
	case cacheentry.TypeRegistry:
		named, err := reference.ParseNormalizedNamed(e.Attrs["ref"])
		if err != nil {
			return nil
		}
		if _, digested := named.(reference.Digested); digested {
			return nil
		}
	case cacheentry.TypeLocal:
		dir := e.Attrs["dest"]
		if dir == "" {
			dir = e.Attrs["src"]
		}
		if dir == "" {
			return nil
		}
		e = e.Clone()
		e.Attrs["dest"] = t.resolve(dir)
	case cacheentry.TypeAzblob:
		// BuildKit joins the azblob prefix and manifests_prefix as paths.
		e = e.Clone()
		if p := e.Attrs["prefix"]; p != "" {
			e.Attrs["prefix"] = path.Clean(p) + "/"
		}
	}
	return cacheentry.ExportLocations(e)
}

func (t Trust) resolve(dir string) string {
	if t.Resolve != nil {
		return t.Resolve(dir)
	}
	return filepath.Clean(dir)
}

// ownScope is e pointed at this build's export scope in e's store, the
// way a cache: line naming that store plans it.
func (t Trust) ownScope(e cacheentry.Entry) cacheentry.Entry {
	name := t.Scope.Export.Name(t.Scope.Build)
	o := e.Clone()
	a := o.Attrs
	switch e.Type {
	case cacheentry.TypeRegistry:
		named, err := reference.ParseNormalizedNamed(a["ref"])
		if err != nil {
			return cacheentry.Entry{}
		}
		a["ref"] = named.Name() + ":" + name
	case cacheentry.TypeLocal:
		dir := a["dest"]
		if dir == "" {
			dir = a["src"]
		}
		// The store is the directory the entry's directory is in, on disk.
		a["dest"] = filepath.Join(filepath.Dir(t.resolve(dir)), name)
	case cacheentry.TypeS3, cacheentry.TypeAzblob:
		WithRepositoryPrefix(o, t.Repository)
		a["name"] = name
	}
	return o
}

// SharedHints are the notes for a trusted build that is not the default
// branch's and writes, as the user wrote it, a location the default
// branch reads: a tag, directory or name that this build also imports
// (the default branch runs the same workflow, so it reads it too), or the
// default branch's own scope. The export is kept; one hint gives the
// cache: line that gives each branch its own scope.
func (t Trust) SharedHints(imports, exports []cacheentry.Entry) []string {
	sp := t.Scope
	if !sp.Trusted || sp.Export == nil || sp.DefaultBranch == "" || sp.Export.Ref == "refs/heads/"+sp.DefaultBranch {
		return nil
	}
	defaultName := ""
	for _, s := range sp.Imports {
		if s.Ref == "refs/heads/"+sp.DefaultBranch {
			defaultName = s.Name(sp.Build)
		}
	}
	reads := map[string]bool{}
	for _, e := range imports {
		for _, l := range t.Locations(e) {
			reads[l] = true
		}
	}
	var lines, what []string
	for _, e := range exports {
		if e.Type == cacheentry.TypeGHA || e.Type == cacheentry.TypeInline {
			continue
		}
		shared := false
		for _, l := range t.Locations(e) {
			shared = shared || reads[l] || (defaultName != "" && (strings.HasSuffix(l, ":"+defaultName) || strings.HasSuffix(l, "/"+defaultName) || strings.HasSuffix(l, strconv.Quote(defaultName))))
		}
		if !shared {
			continue
		}
		if line := CacheLineFor(e); line != "" && !slices.Contains(lines, line) {
			lines = append(lines, line)
		}
		what = append(what, Display(e))
	}
	if len(what) == 0 {
		return nil
	}
	hint := fmt.Sprintf("cache-to %s writes where the default branch (%s) reads, so this %s build replaces its cache; kept as written", strings.Join(what, ", "), sp.DefaultBranch, sp.Export.Key)
	if len(lines) > 0 {
		hint += fmt.Sprintf(". `cache: %s` instead gives each branch and pull request its own scope and still imports the default branch's", strings.Join(lines, "` and `"))
	}
	return []string{hint}
}

// CacheLineFor is the cache: line naming the store an explicit entry
// writes into: the registry repository, the local directory's parent, the
// bucket or container without a name; "" when there is none.
func CacheLineFor(e cacheentry.Entry) string {
	o := cacheentry.Entry{Type: e.Type, Attrs: map[string]string{}}
	for k, v := range e.Attrs {
		if k == "ignore-error" && v == "true" {
			continue
		}
		o.Attrs[k] = v
	}
	switch e.Type {
	case cacheentry.TypeRegistry:
		named, err := reference.ParseNormalizedNamed(e.Attrs["ref"])
		if err != nil {
			return ""
		}
		o.Attrs["ref"] = reference.FamiliarName(named)
	case cacheentry.TypeLocal:
		dir := e.Attrs["dest"]
		if dir == "" {
			return ""
		}
		o.Attrs["dest"] = filepath.Dir(filepath.Clean(dir))
	case cacheentry.TypeS3, cacheentry.TypeAzblob:
		delete(o.Attrs, "name")
	case cacheentry.TypeGHA:
		delete(o.Attrs, "scope")
		for _, k := range runtimeKeys {
			delete(o.Attrs, k)
		}
	}
	return o.Redacted()
}
