// Package plan expands the user's `cache:` lines and a derived scope plan
// into the BuildKit cache imports and exports of one build. A `cache:` line
// names a store (a registry repository, a base directory, a bucket), never
// a branch: the plan adds one location per scope. It is pure: no I/O and
// no environment (AddGitHubRuntime takes getenv).
package plan

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/scope"
)

// Options are the facts from outside the cache inputs that shape the plan.
type Options struct {
	// GitHubRuntime: a cache runtime token is present, so the default
	// cache (none configured) is gha.
	GitHubRuntime bool
	// DefaultLocalDir is the base directory of the default local cache
	// used when nothing is configured and there is no runtime token.
	DefaultLocalDir string
	// Tags are the image tags of the build (the tags input); inline cache
	// is imported from them.
	Tags []string
	// HasImageOutput: the build produces an image (inline export needs it).
	HasImageOutput bool
	// Repository is owner/name (GITHUB_REPOSITORY): s3 and azblob lines
	// that name no prefix get it (RepositoryPrefix). "" adds nothing.
	Repository string
	// ResolvePath gives a local path as it is on disk (absolute, symlinks
	// resolved) for the trust decision; nil takes paths as written. It is
	// the caller's I/O, passed in so that planning stays pure.
	ResolvePath func(string) string
}

// Plan is the resolved cache configuration of one build.
type Plan struct {
	Scope            scope.Plan
	Imports, Exports []cacheentry.Entry
	// Trust decides every write of the build (Finalize, cache mounts, the
	// gha data plane).
	Trust Trust
	// Dropped are the entries Finalize left out, with the reason; each is
	// a warning in the log.
	Dropped []Dropped
	// Notes explain decisions worth a line in the log.
	Notes []string
}

// ErrCacheLine marks errors in what a `cache:` line may name (a store,
// never a branch); errors.Is finds it, the message does not repeat it.
var ErrCacheLine = errors.New("invalid cache line")

type cacheLineError struct{ err error }

func (e *cacheLineError) Error() string        { return e.err.Error() }
func (e *cacheLineError) Unwrap() error        { return e.err }
func (e *cacheLineError) Is(target error) bool { return target == ErrCacheLine }

func lineErr(format string, args ...any) error {
	return &cacheLineError{fmt.Errorf(format, args...)}
}

// origin says where an entry came from, for errors.
type origin string

// Expand turns the cache lines, the explicit cache-from/cache-to lines
// (docker/build-push-action syntax, passed through) and the scope plan into
// the imports and exports of the build. With no cache configured at all it
// uses gha when a runtime token is present, else a local directory.
func Expand(cacheLines []string, explicitFrom, explicitTo []string, sp scope.Plan, opts Options) (Plan, error) {
	p := Plan{Scope: sp, Trust: Trust{Scope: sp, Repository: opts.Repository, Resolve: opts.ResolvePath}}
	var exportFrom []origin

	lines := nonBlank(cacheLines)
	if len(lines) == 0 && len(nonBlank(explicitFrom)) == 0 && len(nonBlank(explicitTo)) == 0 {
		def, note, err := defaultLine(opts)
		if err != nil {
			return Plan{}, err
		}
		lines = []numbered{{1, def}}
		p.Notes = append(p.Notes, note)
	}
	for _, l := range lines {
		where := origin(fmt.Sprintf("input \"cache\" line %d", l.n))
		im, ex, notes, err := expandLine(l.text, sp, opts)
		if err != nil {
			return Plan{}, fmt.Errorf("%s: %w", where, err)
		}
		p.Imports = append(p.Imports, im...)
		for _, e := range ex {
			p.Exports = append(p.Exports, e)
			exportFrom = append(exportFrom, where)
		}
		p.Notes = append(p.Notes, notes...)
	}
	for _, l := range nonBlank(explicitFrom) {
		es, err := cacheentry.ParseLine(l.text, cacheentry.Import)
		if err != nil {
			return Plan{}, fmt.Errorf("input \"cache-from\" line %d: %w", l.n, err)
		}
		p.Imports = append(p.Imports, es...)
	}
	for _, l := range nonBlank(explicitTo) {
		es, err := cacheentry.ParseLine(l.text, cacheentry.Export)
		if err != nil {
			return Plan{}, fmt.Errorf("input \"cache-to\" line %d: %w", l.n, err)
		}
		for _, e := range es {
			// Kept as written except ignore-error: a cache outage must not
			// fail the build unless the user says ignore-error=false.
			if _, ok := e.Attrs["ignore-error"]; !ok {
				e.Attrs["ignore-error"] = "true"
			}
			p.Exports = append(p.Exports, e)
			exportFrom = append(exportFrom, origin(fmt.Sprintf("input \"cache-to\" line %d", l.n)))
		}
	}
	p.Imports = dedupe(p.Imports)
	if err := checkExports(p.Exports, exportFrom, opts.HasImageOutput); err != nil {
		return Plan{}, err
	}
	// Belt and braces: the set as a whole must satisfy cacheentry's rules.
	if err := cacheentry.ValidateSet(p.Imports, p.Exports, opts.HasImageOutput); err != nil {
		return Plan{}, err
	}
	return p, nil
}

type numbered struct {
	n    int // 1-based position in the input, blank lines counted
	text string
}

// nonBlank drops blank lines and "#" comments, keeping input positions.
func nonBlank(lines []string) []numbered {
	var out []numbered
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		out = append(out, numbered{i + 1, t})
	}
	return out
}

func defaultLine(opts Options) (line, note string, err error) {
	if opts.GitHubRuntime {
		return "type=gha", "no cache configured: using the GitHub Actions cache (type=gha)", nil
	}
	if opts.DefaultLocalDir == "" {
		return "", "", lineErr("no cache configured and no default local directory")
	}
	return cacheentry.Entry{Type: cacheentry.TypeLocal, Attrs: map[string]string{"dest": opts.DefaultLocalDir}}.String(),
		"no cache configured and no GitHub Actions runtime: using a local directory (type=local)", nil
}

// checkExports refuses two exports to one location, naming both inputs,
// and inline export without an image output.
func checkExports(exports []cacheentry.Entry, from []origin, hasImage bool) error {
	seen := map[string]origin{}
	for i, e := range exports {
		if e.Type == cacheentry.TypeInline && !hasImage {
			return fmt.Errorf("%s: type=inline: %w: inline cache is stored in the image, so the build needs an image output (push: true, or an image/registry output); use type=registry for a separate cache", from[i], cacheentry.ErrUnsupported)
		}
		for _, loc := range cacheentry.ExportLocations(e) {
			if first, dup := seen[loc]; dup {
				return fmt.Errorf("%s and %s: %w: both export to %s", first, from[i], cacheentry.ErrConflict, loc)
			}
			seen[loc] = from[i]
		}
	}
	return nil
}

func dedupe(es []cacheentry.Entry) []cacheentry.Entry {
	seen := map[string]bool{}
	var out []cacheentry.Entry
	for _, e := range es {
		k := e.String()
		if !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// expandLine turns one cache line into imports, one per import scope, and
// at most one export, to the export scope.
func expandLine(line string, sp scope.Plan, opts Options) (imports, exports []cacheentry.Entry, notes []string, err error) {
	tmpl, err := cacheentry.ParseSyntax(line)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := checkTemplate(tmpl); err != nil {
		return nil, nil, nil, err
	}
	place, err := placer(tmpl, sp.Build)
	if err != nil {
		return nil, nil, nil, err
	}
	// The store as written, before the repository is added: the location
	// of earlier versions, imported read-only below.
	old := tmpl.Clone()
	if WithRepositoryPrefix(tmpl, opts.Repository) {
		if e := oldDefaultBranch(old, place, sp); e != nil {
			defer func() {
				if err == nil {
					imports = append(imports, *e)
					notes = append(notes, fmt.Sprintf("%s: also importing %s read-only: the default branch's cache from before bkcache added the repository to the location (remove this fallback by setting prefix)", tmpl.Type, Display(*e)))
				}
			}()
		}
	}

	if tmpl.Type == cacheentry.TypeInline {
		imports, notes, err = inlineImports(sp, opts.Tags)
		if err != nil {
			return nil, nil, nil, err
		}
	} else {
		for _, s := range importScopes(tmpl.Type, sp) {
			e := only(tmpl, cacheentry.Import)
			place(e, cacheentry.Import, s)
			if err := e.Validate(cacheentry.Import); err != nil {
				return nil, nil, nil, err
			}
			imports = append(imports, e)
		}
	}
	if sp.Export != nil {
		e := only(tmpl, cacheentry.Export)
		place(e, cacheentry.Export, *sp.Export)
		e = cacheentry.WithDefaults(e, cacheentry.Export)
		if err := e.Validate(cacheentry.Export); err != nil {
			return nil, nil, nil, err
		}
		exports = append(exports, e)
	}
	return imports, exports, notes, nil
}

// importScopes: gha reads one scope, the build's name; the cache service
// itself serves it from every ref the runtime token may read (this ref,
// the base and the default branch), so listing branches would add nothing.
func importScopes(typ string, sp scope.Plan) []scope.Scope {
	if typ == cacheentry.TypeGHA {
		return []scope.Scope{{Key: "", Reason: "gha reads every ref scope the token allows"}}
	}
	return sp.Imports
}

// checkTemplate refuses keys that would name a branch, unknown keys, and
// keys the backend ignores; the rest is checked on the expanded entries.
func checkTemplate(t cacheentry.Entry) error {
	for k := range t.Attrs {
		if cacheentry.Allows(t.Type, k, cacheentry.Import) || cacheentry.Allows(t.Type, k, cacheentry.Export) {
			continue
		}
		// Validate explains why the key is not allowed (unknown, or ignored
		// by this backend).
		if err := (cacheentry.Entry{Type: t.Type, Attrs: map[string]string{k: t.Attrs[k]}}).Validate(cacheentry.Export); err != nil {
			return err
		}
		return lineErr("%s: key %q is not allowed", t.Type, k)
	}
	if t.Type == cacheentry.TypeInline {
		for k := range t.Attrs {
			if k != "mode" && k != "ignore-error" {
				return lineErr("inline: key %q: an inline cache line has no keys (it imports from the tags input)", k)
			}
		}
	}
	return nil
}

// only copies the template's keys that apply in dir.
func only(t cacheentry.Entry, dir cacheentry.Direction) cacheentry.Entry {
	e := cacheentry.Entry{Type: t.Type, Attrs: map[string]string{}}
	for k, v := range t.Attrs {
		if cacheentry.Allows(t.Type, k, dir) {
			e.Attrs[k] = v
		}
	}
	return e
}

// placer returns the function that points an entry at one scope, after
// checking the line names a store and not a location within it.
func placer(t cacheentry.Entry, build string) (func(e cacheentry.Entry, dir cacheentry.Direction, s scope.Scope), error) {
	a := t.Attrs
	switch t.Type {
	case cacheentry.TypeRegistry:
		repo := a["ref"]
		if repo == "" {
			return nil, fmt.Errorf("registry: %w \"ref\" (the cache repository, e.g. ref=ghcr.io/owner/app-cache)", cacheentry.ErrMissingKey)
		}
		if err := cacheentry.CheckRepository(repo); err != nil {
			return nil, lineErr("registry: key \"ref\": %w", err)
		}
		return func(e cacheentry.Entry, _ cacheentry.Direction, s scope.Scope) {
			e.Attrs["ref"] = repo + ":" + s.Name(build)
		}, nil
	case cacheentry.TypeLocal:
		if _, ok := a["digest"]; ok {
			return nil, lineErr("local: key \"digest\" pins one manifest and cannot apply per scope; use cache-from for it")
		}
		base := a["dest"]
		if src := a["src"]; src != "" {
			if base != "" && filepath.Clean(base) != filepath.Clean(src) {
				return nil, lineErr("local: src and dest differ; a cache line names one base directory (dest=<dir>)")
			}
			base = src
		}
		if base == "" {
			return nil, fmt.Errorf("local: %w \"dest\" (the base directory)", cacheentry.ErrMissingKey)
		}
		delete(a, "src")
		delete(a, "dest")
		return func(e cacheentry.Entry, dir cacheentry.Direction, s scope.Scope) {
			key := "dest"
			if dir == cacheentry.Import {
				key = "src"
			}
			e.Attrs[key] = filepath.Join(base, s.Name(build))
		}, nil
	case cacheentry.TypeS3, cacheentry.TypeAzblob:
		if _, ok := a["name"]; ok {
			return nil, lineErr("%s: key \"name\" is set per scope by bkcache; remove it (use prefix to separate stores, cache-scope to separate builds)", t.Type)
		}
		return func(e cacheentry.Entry, _ cacheentry.Direction, s scope.Scope) {
			e.Attrs["name"] = s.Name(build)
		}, nil
	case cacheentry.TypeGHA:
		if _, ok := a["scope"]; ok {
			return nil, lineErr("gha: key \"scope\" comes from the cache-scope input; remove it and set cache-scope instead (the GitHub cache already keeps branches apart)")
		}
		return func(e cacheentry.Entry, _ cacheentry.Direction, _ scope.Scope) {
			e.Attrs["scope"] = build
		}, nil
	case cacheentry.TypeInline:
		return func(cacheentry.Entry, cacheentry.Direction, scope.Scope) {}, nil
	}
	return nil, fmt.Errorf("%w %q", cacheentry.ErrUnknownType, t.Type)
}

// RepositoryPrefix is the prefix bkcache gives s3 and azblob stores that
// name none, so repositories sharing a bucket or container never share a
// location: BuildKit's defaults (no prefix; azblob's container
// "buildkit-cache") and bkcache's scope names hold no repository, so two
// repositories' default branches would both write name=buildkit_main.
// owner/name is lowercased (GitHub's names are case-insensitive) and kept
// to [a-z0-9._-] per part.
func RepositoryPrefix(repository string) string {
	owner, name, ok := strings.Cut(repository, "/")
	if !ok || owner == "" || name == "" {
		return ""
	}
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
				return r
			}
			return '-'
		}, strings.ToLower(s))
	}
	return clean(owner) + "/" + clean(name) + "/"
}

// WithRepositoryPrefix adds RepositoryPrefix(repository) to an s3 entry
// without a prefix, or an azblob entry with neither prefix nor container
// (a container the user names is theirs). It reports whether it did.
func WithRepositoryPrefix(e cacheentry.Entry, repository string) bool {
	p := RepositoryPrefix(repository)
	if p == "" || e.Attrs == nil {
		return false
	}
	_, hasPrefix := e.Attrs["prefix"]
	_, hasContainer := e.Attrs["container"]
	switch {
	case e.Type == cacheentry.TypeS3 && !hasPrefix,
		e.Type == cacheentry.TypeAzblob && !hasPrefix && !hasContainer:
		e.Attrs["prefix"] = p
		return true
	}
	return false
}

// oldDefaultBranch is the import of the default branch's scope at the
// store's location without the repository prefix, where versions before
// it wrote: the first build after upgrading starts warm from it. Only the
// default branch's: on a shared bucket, other names there may have been
// written by another repository's pull requests. nil when the plan does
// not read the default branch.
func oldDefaultBranch(old cacheentry.Entry, place func(cacheentry.Entry, cacheentry.Direction, scope.Scope), sp scope.Plan) *cacheentry.Entry {
	for _, s := range sp.Imports {
		if sp.DefaultBranch == "" || s.Ref != "refs/heads/"+sp.DefaultBranch {
			continue
		}
		e := only(old, cacheentry.Import)
		place(e, cacheentry.Import, s)
		if e.Validate(cacheentry.Import) != nil {
			return nil
		}
		return &e
	}
	return nil
}
