package explain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Kinds of causes.
const (
	KindNoRecord     = "no-record"
	KindContext      = "context"
	KindBuildArg     = "build-arg"
	KindBaseImage    = "base-image"
	KindInstruction  = "instruction"
	KindPlatform     = "platform"
	KindCacheMissing = "cache-missing"
	KindBuildKit     = "buildkit-version"
	KindNewStep      = "new-step"
	KindDefinition   = "definition"
	KindUnknown      = "unknown"
	maxPaths         = 10
)

// Cause is why one step missed, in one line a developer acts on.
type Cause struct {
	Kind string
	Step string // the vertex name of the first miss, without its [n/m] prefix
	Text string
}

func (c Cause) String() string { return c.Text }

// NoRecord is the cause when no imported scope had a record: the scopes'
// first build, or a record that expired with the cache.
func NoRecord(tried []string) Cause {
	s := "nothing to compare with: no build record in the scopes tried"
	if len(tried) == 0 {
		s = "nothing to compare with: no cache scope was imported"
	} else {
		s += " (" + strings.Join(tried, ", ") + ")"
	}
	return Cause{Kind: KindNoRecord, Text: s}
}

// Compare names the cause of each first miss in cur, compared with old,
// the record of the imported scope. A first miss is a vertex that missed
// the cache although all its inputs hit (or are unchanged sources); the
// misses after it follow from it. Causes come in build order, one per
// distinct cause; none when nothing missed.
func Compare(old, cur Record) []Cause {
	oldIDs, curIDs := identities(old), identities(cur)
	oldByID := map[string]int{}
	for i, id := range oldIDs {
		oldByID[id] = i
	}
	// unchanged: hit the cache, or a source (no inputs) with the same
	// definition as before. A fresh builder never marks FROM or the build
	// context Cached, so sources are judged by their identity.
	unchanged := func(i int) bool {
		v := cur.Vertices[i]
		if v.Cached {
			return true
		}
		_, was := oldByID[curIDs[i]]
		return was && len(v.Inputs) == 0
	}
	// Only the vertices steps depend on matter: FROM, the context and the
	// steps themselves; "[internal] load metadata …" and the like do not.
	relevant := map[int]bool{}
	for i, v := range cur.Vertices {
		if isStepName(v.Name) || isFromName(v.Name) {
			relevant[i] = true
			for _, in := range v.Inputs {
				relevant[in] = true
			}
		}
	}
	c := comparison{old: old, cur: cur, oldIDs: oldIDs, curIDs: curIDs, oldByID: oldByID}
	var causes []Cause
	seen := map[string]bool{}
	for i, v := range cur.Vertices {
		if !relevant[i] || unchanged(i) {
			continue
		}
		allIn := true
		for _, in := range v.Inputs {
			if !unchanged(in) {
				allIn = false
				break
			}
		}
		if !allIn {
			continue
		}
		k := c.cause(i)
		if !seen[k.Text] {
			seen[k.Text] = true
			causes = append(causes, k)
		}
	}
	return causes
}

// Same reports whether cur is the build old recorded, again: the same
// graph (by identity), build-args, platforms, context files, BuildKit and
// export mode, with every step cached. Saving it again would add nothing.
func Same(old, cur Record) bool {
	if old.Salt != cur.Salt || old.BuildKit != cur.BuildKit || old.Mode != cur.Mode ||
		!slices.Equal(old.Platforms, cur.Platforms) || old.Hashed != cur.Hashed || old.FilesDepth != cur.FilesDepth ||
		!maps.Equal(old.Files, cur.Files) || len(changedArgs(old, cur)) > 0 {
		return false
	}
	for _, v := range cur.Vertices {
		if isStepName(v.Name) && !v.Cached {
			return false
		}
	}
	a, b := identities(old), identities(cur)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// identities gives each vertex an identity that is stable across builds.
// It is the vertex digest, except where BuildKit's digest is not stable:
// the frontend's local sources (the build context, the Dockerfile) carry
// the session ID in their definition (client/llb's Local, AttrLocalSessionID),
// so they and every vertex built on them get new digests on each build
// although their cache keys stay (the local source's CacheMap leaves the
// session out). Those get an identity from their name and their inputs'
// identities instead; what the name does not show (a RUN's environment)
// is compared through the build-args.
func identities(r Record) []string {
	ids := make([]string, len(r.Vertices))
	session := make([]bool, len(r.Vertices))
	for i, v := range r.Vertices { // inputs come before the vertices using them
		if len(v.Inputs) == 0 {
			if localSource(v.Name) {
				ids[i], session[i] = "source:"+v.Name, true
			} else {
				ids[i] = v.Digest
			}
			continue
		}
		var ins []string
		for _, in := range v.Inputs {
			if in < i {
				session[i] = session[i] || session[in]
				ins = append(ins, ids[in])
			}
		}
		if !session[i] {
			ids[i] = v.Digest
			continue
		}
		slices.Sort(ins)
		h := sha256.Sum256([]byte(StripPrefix(v.Name) + "\x00" + strings.Join(ins, "\x00")))
		ids[i] = "named:" + hex.EncodeToString(h[:])
	}
	return ids
}

// localSource tells the frontend's local sources by the names dockerui
// gives them: the build context, the Dockerfile, .dockerignore, and named
// contexts from the client.
func localSource(name string) bool {
	return strings.HasPrefix(name, "[internal] load ") || (strings.HasPrefix(name, "[context ") && strings.HasSuffix(name, "] load from client"))
}

type comparison struct {
	old, cur       Record
	oldIDs, curIDs []string
	oldByID        map[string]int
}

// cause explains why vertex i of cur missed, its inputs being unchanged.
func (c comparison) cause(i int) Cause {
	old, cur := c.old, c.cur
	v := cur.Vertices[i]
	step := StripPrefix(v.Name)
	mk := func(kind, format string, a ...any) Cause {
		return Cause{Kind: kind, Step: step, Text: fmt.Sprintf(format, a...)}
	}
	changed := changedArgs(old, cur)
	// Another platform defines every step anew (each op carries its
	// platform), though the names below the context stay the same.
	if !slices.Equal(old.Platforms, cur.Platforms) {
		return mk(KindPlatform, "platform changed (%s → %s)", platforms(old.Platforms), platforms(cur.Platforms))
	}
	if _, same := c.oldByID[c.curIDs[i]]; same {
		// The same definition as in the record: what differs is content
		// BuildKit adds to the cache key at solve time (the files a COPY
		// reads, in the op's CacheMap), the environment of a RUN below the
		// context, or the cache itself.
		if srcs, ok := contextSources(step); ok {
			if !old.Hashed || !cur.Hashed {
				return mk(KindUnknown, "%s: same step as in the record, but the context files were not hashed in both builds: a changed file, or a cache that was not imported", step)
			}
			if ch := filterChanges(diffFiles(old, cur), srcs); len(ch) > 0 {
				return mk(KindContext, "%s: %s", step, describeChanges(ch))
			}
		}
		if len(changed) > 0 && strings.HasPrefix(step, "RUN ") {
			return mk(KindBuildArg, "%s: build-arg changed: %s", step, describeArgs(old, cur, changed))
		}
		if old.BuildKit != "" && cur.BuildKit != "" && old.BuildKit != cur.BuildKit {
			return mk(KindBuildKit, "BuildKit version changed (%s → %s)", old.BuildKit, cur.BuildKit)
		}
		where := old.Scope
		if where == "" {
			where = "the imported scope"
		}
		why := "an evicted blob, or the cache was exported to another scope"
		if old.Mode == "min" {
			why = "the export was mode=min, which keeps only the final stage's cache"
		}
		return mk(KindCacheMissing, "%s: same step as in the record of %s, but its cache was not imported: %s", step, where, why)
	}
	if old.BuildKit != "" && cur.BuildKit != "" && old.BuildKit != cur.BuildKit {
		return mk(KindBuildKit, "BuildKit version changed (%s → %s): its frontend may define every step anew", old.BuildKit, cur.BuildKit)
	}
	if isFromName(v.Name) {
		ref, dig := fromRef(step)
		for _, ov := range old.Vertices {
			if !isFromName(ov.Name) || stagePrefix(ov.Name) != stagePrefix(v.Name) {
				continue
			}
			oref, odig := fromRef(StripPrefix(ov.Name))
			if oref == ref && odig != dig {
				return mk(KindBaseImage, "base image %s moved (%s → %s)", ref, orNone(odig), orNone(dig))
			}
			return mk(KindInstruction, "instruction edited: %q → %q", StripPrefix(ov.Name), step)
		}
		return mk(KindNewStep, "new stage, not in the record: %s", step)
	}
	// The same inputs in the record: the step that stood here before.
	oi := c.counterpart(i)
	if oi < 0 {
		return mk(KindNewStep, "new step, not in the record: %s", step)
	}
	ostep := StripPrefix(old.Vertices[oi].Name)
	if len(changed) > 0 {
		// The frontend puts the build-args of a stage into its RUN steps'
		// environment and expands them in the step's name; an arg explains
		// the change when the names differ only where it is used, or do not
		// differ at all (the environment did).
		var used []string
		for _, name := range changed {
			a := cur.Args[name]
			if ostep == step || (!a.Secret && a.Value != "" && strings.Contains(step, a.Value)) || (a.Secret && strings.Contains(step, "***")) {
				used = append(used, name)
			}
		}
		if len(used) > 0 {
			return mk(KindBuildArg, "%s: build-arg changed: %s", step, describeArgs(old, cur, used))
		}
	}
	if ostep != step {
		return mk(KindInstruction, "instruction edited: %q → %q", ostep, step)
	}
	return mk(KindDefinition, "%s: the step's definition changed, but not its text (a build option, such as a secret, network or mount)", step)
}

func describeArgs(old, cur Record, names []string) string {
	var parts []string
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %s → %s", name, argValue(old.Args, name), argValue(cur.Args, name)))
	}
	return strings.Join(parts, ", ")
}

// counterpart finds the vertex of old with exactly the inputs of cur's
// vertex i (by identity), preferring the same stage; -1 if none.
func (c comparison) counterpart(i int) int {
	want := inputIDs(c.cur, c.curIDs, i)
	if len(want) == 0 {
		return -1
	}
	best := -1
	for j := range c.old.Vertices {
		if !slices.Equal(inputIDs(c.old, c.oldIDs, j), want) {
			continue
		}
		if best < 0 || stagePrefix(c.old.Vertices[j].Name) == stagePrefix(c.cur.Vertices[i].Name) {
			best = j
		}
	}
	return best
}

func inputIDs(r Record, ids []string, i int) []string {
	var out []string
	for _, in := range r.Vertices[i].Inputs {
		out = append(out, ids[in])
	}
	slices.Sort(out)
	return out
}

// changedArgs names the build-args that differ. Hashes made with
// different salts do not compare: then only the readable values do, and a
// secret-like arg counts as changed.
func changedArgs(oldR, curR Record) []string {
	old, cur := oldR.Args, curR.Args
	sameSalt := oldR.Salt == curR.Salt
	var out []string
	for _, k := range slices.Sorted(maps.Keys(cur)) {
		o, ok := old[k]
		switch {
		case !ok:
			out = append(out, k)
		case sameSalt && o.Hash != cur[k].Hash:
			out = append(out, k)
		case !sameSalt && (o.Secret || cur[k].Secret || o.Value != cur[k].Value):
			out = append(out, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(old)) {
		if _, ok := cur[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

func argValue(args map[string]Arg, name string) string {
	a, ok := args[name]
	switch {
	case !ok:
		return "(unset)"
	case a.Secret:
		return "*** (secret, hash " + a.Hash[:6] + ")"
	}
	return fmt.Sprintf("%q", a.Value)
}

func platforms(p []string) string {
	if len(p) == 0 {
		return "the builder's default"
	}
	return strings.Join(p, ",")
}

func orNone(s string) string {
	if s == "" {
		return "(no digest)"
	}
	return s
}

// prefix is the frontend's "[stage 2/5] " before an instruction
// (dockerfile2llb's prefixCommand).
var prefix = regexp.MustCompile(`^\[([^\]]*?)\s*\d+/\d+\] `)

// StripPrefix returns a vertex name without the frontend's step prefix.
func StripPrefix(name string) string { return prefix.ReplaceAllString(name, "") }

func stagePrefix(name string) string {
	m := prefix.FindStringSubmatch(name)
	if m == nil {
		return ""
	}
	return m[1]
}

// IsStep reports whether a vertex name is a Dockerfile instruction other
// than FROM, as buildkit counts steps.
func IsStep(name string) bool { return isStepName(name) }

func isStepName(name string) bool { return prefix.MatchString(name) && !isFromName(name) }

func isFromName(name string) bool {
	return prefix.MatchString(name) && strings.HasPrefix(StripPrefix(name), "FROM ")
}

// fromRef splits "FROM ref@sha256:…" into the ref and the digest.
func fromRef(step string) (string, string) {
	ref := strings.TrimPrefix(step, "FROM ")
	ref, dig, _ := strings.Cut(ref, "@")
	return ref, dig
}

// contextSources returns the sources of a COPY or ADD from the build
// context, or of a RUN's bind mounts of it, as written in the step's name;
// ok is false for other steps, COPY --from and mounts with from=.
func contextSources(step string) ([]string, bool) {
	instr, rest, _ := strings.Cut(step, " ")
	if instr == "RUN" {
		return bindSources(rest)
	}
	if instr != "COPY" && instr != "ADD" {
		return nil, false
	}
	var args []string
	for _, f := range strings.Fields(rest) {
		if strings.HasPrefix(f, "--from=") {
			return nil, false
		}
		if strings.HasPrefix(f, "--") && len(args) == 0 {
			continue
		}
		args = append(args, f)
	}
	if len(args) > 0 && strings.HasPrefix(args[0], "[") {
		var js []string
		if json.Unmarshal([]byte(strings.Join(args, " ")), &js) == nil {
			args = js
		}
	}
	if len(args) < 2 {
		return nil, true
	}
	return args[:len(args)-1], true
}

// bindSources reads the --mount=type=bind flags of a RUN (as the
// frontend's name shows them) that mount the build context.
func bindSources(rest string) ([]string, bool) {
	var srcs []string
	for _, f := range strings.Fields(rest) {
		spec, ok := strings.CutPrefix(f, "--mount=")
		if !ok {
			if !strings.HasPrefix(f, "--") {
				break // the command
			}
			continue
		}
		kv := map[string]string{}
		for _, p := range strings.Split(spec, ",") {
			k, v, _ := strings.Cut(p, "=")
			kv[k] = v
		}
		if kv["type"] != "bind" || kv["from"] != "" {
			continue
		}
		src := kv["source"]
		if src == "" {
			src = kv["src"]
		}
		if src == "" {
			src = "."
		}
		srcs = append(srcs, src)
	}
	return srcs, len(srcs) > 0
}

// filterChanges keeps the changes under the given sources; all of them
// when a source cannot be read (an unexpanded variable).
func filterChanges(ch []FileChange, srcs []string) []FileChange {
	if len(srcs) == 0 {
		return ch
	}
	var out []FileChange
	for _, c := range ch {
		for _, s := range srcs {
			if matchSource(s, c.Path) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// matchSource reports whether a context path is read by a COPY source: the
// source itself, a file under it, or a wildcard match of it or its parent
// directories. A folded "dir/" path matches when a source is in it.
func matchSource(src, p string) bool {
	if strings.ContainsAny(src, "$") {
		return true
	}
	src = path.Clean(strings.TrimPrefix(src, "/"))
	if src == "." {
		return true
	}
	if dir, folded := strings.CutSuffix(p, "/"); folded {
		return dir == "." || src == dir || strings.HasPrefix(src, dir+"/") || strings.HasPrefix(dir, src+"/")
	}
	for q := p; q != "."; q = path.Dir(q) {
		if q == src {
			return true
		}
		if ok, _ := path.Match(src, q); ok {
			return true
		}
	}
	return false
}

func describeChanges(ch []FileChange) string {
	var parts []string
	for i, c := range ch {
		if i == maxPaths {
			parts = append(parts, fmt.Sprintf("and %d more", len(ch)-maxPaths))
			break
		}
		parts = append(parts, c.Kind+" "+c.Path)
	}
	noun := "context file"
	if len(ch) > 1 {
		noun = "context files"
	}
	return noun + " " + strings.Join(parts, ", ")
}

// Summary is the one-line answer for the cache-miss-reason output: the
// first cause, or "" when nothing missed.
func Summary(causes []Cause) string {
	if len(causes) == 0 {
		return ""
	}
	return causes[0].Text
}
