// Package cachemount finds the `RUN --mount=type=cache` mounts a Dockerfile
// target uses, with the identity BuildKit gives each one, so that bkcache can
// save and restore exactly the cache the build's RUN steps see.
//
// It is pure: it parses with BuildKit's own dockerfile parser and
// instructions packages and does no I/O.
package cachemount

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Sharing modes of a cache mount, as the Dockerfile spells them.
const (
	SharingShared  = "shared"
	SharingPrivate = "private"
	SharingLocked  = "locked"
)

// DefaultMode is the mode BuildKit gives a cache directory that sets uid,
// gid or mode (dockerfile2llb's setCacheUIDGID).
const DefaultMode = 0o755

// Mount is one cache mount as BuildKit identifies it. Two RUN steps that
// agree on ID, UID, GID, Mode and Owned share one cache; any difference
// makes BuildKit use a different cache (moby/buildkit#3041).
type Mount struct {
	// ID is the id= value, or the cleaned target when there is none.
	ID     string
	Target string // the first RUN's target, for the log
	// Owned is true when the mount sets uid, gid or mode: BuildKit then
	// bases the cache on a directory created with them, which is part of
	// the cache's identity.
	Owned   bool
	UID     int
	GID     int
	Mode    uint32
	Sharing string
	Stage   string // the first stage that uses it
	// Targets are the targets of every RUN that mounts this cache, as
	// written; a build step whose name has one used the mount.
	Targets []string
}

// Skipped is a cache mount bkcache does not carry, and why.
type Skipped struct {
	Target string
	Stage  string
	Reason string
}

// Found is what Discover found in the stages the target needs.
type Found struct {
	Mounts  []Mount
	Skipped []Skipped
	// Notes are said once for the whole Dockerfile (a custom frontend,
	// a reference BuildKit rejects).
	Notes []string
	// NeedsPlatform: a mount was skipped because the builder's platform
	// was not given; Discover with Options.BuildPlatform finds it.
	NeedsPlatform bool
}

// Options are what the build gives the Dockerfile frontend besides the
// Dockerfile: they decide the values of build variables.
type Options struct {
	Target    string            // the stage to build; the last when empty
	BuildArgs map[string]string // --build-arg values
	// Platforms are the target platforms; empty means the builder's.
	Platforms []string
	// BuildPlatform is the builder's platform ("linux/amd64"); empty
	// while it is not known (a dry run does not connect). Mounts whose
	// identity then depends on a platform variable are skipped, and
	// Found.NeedsPlatform says so.
	BuildPlatform string
}

// Discover parses a Dockerfile and returns the cache mounts of the stages
// that the target needs: its own, those it is built FROM, and those it
// copies or mounts from, transitively. It expands build variables as
// dockerfile2llb does, once per target platform.
func Discover(dockerfile []byte, opt Options) (Found, error) {
	var f Found
	frontend, custom := customFrontend(dockerfile, opt.BuildArgs)
	if custom {
		// Said once, whatever the mounts: the flags are read as the
		// Dockerfile frontend reads them.
		f.Notes = append(f.Notes, fmt.Sprintf("the Dockerfile asks for the frontend %s (# syntax=): its cache mounts are read as BuildKit's Dockerfile frontend reads them; set cache-mounts: none if that frontend reads them otherwise", frontend))
	}
	d, err := parseDockerfile(dockerfile)
	if err == nil {
		err = d.discover(&f, opt)
	}
	if err != nil {
		if custom {
			f.Notes[0] = fmt.Sprintf("the Dockerfile asks for the frontend %s (# syntax=), whose flags BuildKit's Dockerfile parser cannot read (%v): no cache mounts are carried", frontend, err)
			return Found{Notes: f.Notes}, nil
		}
		return Found{}, err
	}
	return f, nil
}

// customFrontend reports the frontend a `# syntax=` line (or the
// BUILDKIT_SYNTAX build argument, which overrides it) asks for when it is
// not BuildKit's own Dockerfile frontend, whose flags are those parsed here.
func customFrontend(dockerfile []byte, buildArgs map[string]string) (string, bool) {
	ref, _, _, ok := parser.DetectSyntax(dockerfile)
	if v := buildArgs["BUILDKIT_SYNTAX"]; v != "" {
		ref, ok = v, true
	}
	if !ok || ref == "" {
		return "", false
	}
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref, true
	}
	switch n.Name() {
	case "docker.io/docker/dockerfile", "docker.io/docker/dockerfile-upstream":
		return ref, false
	}
	return ref, true
}

// dockerfile is a parsed Dockerfile with the raw --mount flags of every
// RUN, in the order of the stages' RUN commands.
type dockerfile struct {
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	escape   rune
	runNodes map[*instructions.RunCommand]*parser.Node
}

func parseDockerfile(dt []byte) (*dockerfile, error) {
	res, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return nil, fmt.Errorf("parsing Dockerfile: %w", err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("parsing Dockerfile: %w", err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("parsing Dockerfile: no FROM")
	}
	d := &dockerfile{stages: stages, metaArgs: metaArgs, escape: res.EscapeToken, runNodes: map[*instructions.RunCommand]*parser.Node{}}
	// instructions.Parse keeps the RUN nodes' order; pair each RunCommand
	// with its node so that every mount can be parsed on its own.
	var nodes []*parser.Node
	for _, n := range res.AST.Children {
		if strings.EqualFold(n.Value, "run") {
			nodes = append(nodes, n)
		}
	}
	i := 0
	for _, st := range stages {
		for _, cmd := range st.Commands {
			if run, ok := cmd.(*instructions.RunCommand); ok {
				if i >= len(nodes) {
					return nil, errors.New("parsing Dockerfile: RUN instructions out of step")
				}
				d.runNodes[run] = nodes[i]
				i++
			}
		}
	}
	return d, nil
}

// discover adds the mounts of every target platform to f.
//
// dockerfile2llb cannot run here: it resolves base images through a
// frontend client, which is I/O. So the few rules of its dispatch that
// give build variables their values (defaultArgs, buildMetaArgs,
// dispatchArg, dispatchEnv, the FROM lookup of addState) are reproduced
// below, with BuildKit's own parser, instructions and shell.Lex doing
// the parsing and expansion.
func (d *dockerfile) discover(f *Found, opt Options) error {
	targets := opt.Platforms
	if len(targets) == 0 {
		targets = []string{opt.BuildPlatform}
	}
	byIdentity := map[string]int{}
	// The same mount skipped in two stages or platforms is said once.
	skipped := map[[2]string]bool{}
	noted := map[string]bool{}
	for _, tp := range targets {
		g, err := d.globals(opt, tp)
		if err != nil {
			return err
		}
		bases := d.bases(g)
		last := len(d.stages) - 1
		if opt.Target != "" {
			last = stageIndex(d.stages, opt.Target, len(d.stages), true)
			if last < 0 {
				return fmt.Errorf("target stage %q not found in the Dockerfile", opt.Target)
			}
		}
		needed, notes := neededStages(d.stages, bases, last)
		for _, n := range notes {
			if !noted[n] {
				noted[n] = true
				f.Notes = append(f.Notes, n)
			}
		}
		envs := map[int]*env{}
		for i := range d.stages {
			if !needed[i] {
				continue
			}
			var e *env
			if b := bases[i]; b.stage >= 0 {
				e = envs[b.stage].clone()
			} else {
				e = newEnv()
				// An image brings an ENV of its own; scratch does not.
				e.fromImage = b.image
			}
			envs[i] = e
			for _, m := range d.stageMounts(i, e, g, opt.BuildArgs) {
				if m.skip != nil {
					if k := [2]string{m.skip.Target, m.skip.Reason}; !skipped[k] {
						skipped[k] = true
						f.Skipped = append(f.Skipped, *m.skip)
						if m.needsPlatform {
							f.NeedsPlatform = true
						}
					}
					continue
				}
				mnt := m.mount
				id := mnt.identity()
				if j, ok := byIdentity[id]; ok {
					for _, t := range mnt.Targets {
						if !slices.Contains(f.Mounts[j].Targets, t) {
							f.Mounts[j].Targets = append(f.Mounts[j].Targets, t)
						}
					}
					continue
				}
				byIdentity[id] = len(f.Mounts)
				f.Mounts = append(f.Mounts, mnt)
			}
		}
	}
	return nil
}

// platformArgs are the build variables BuildKit derives from the build and
// target platforms (dockerfile2llb's defaultArgs).
var platformArgs = []string{
	"BUILDPLATFORM", "BUILDOS", "BUILDOSVERSION", "BUILDARCH", "BUILDVARIANT",
	"TARGETPLATFORM", "TARGETOS", "TARGETOSVERSION", "TARGETARCH", "TARGETVARIANT",
}

// globals are the meta-args (the ARGs before the first FROM) with the
// platform variables, as dockerfile2llb's defaultArgs and buildMetaArgs
// compute them for one target platform.
func (d *dockerfile) globals(opt Options, target string) (*env, error) {
	g := newEnv()
	set := func(k, v string, known bool) {
		if ov, ok := opt.BuildArgs[k]; ok {
			v, known = ov, true
		}
		if known {
			g.set(k, v)
		} else {
			g.setUnknown(k, k)
		}
	}
	bp, bpOK := parsePlatform(opt.BuildPlatform)
	tp, tpOK := parsePlatform(target)
	for i, k := range platformArgs {
		p, ok := bp, bpOK
		if i >= 5 {
			p, ok = tp, tpOK
		}
		set(k, []string{platforms.FormatAll(p), p.OS, p.OSVersion, p.Architecture, p.Variant}[i%5], ok)
	}
	stage := opt.Target
	if stage == "" {
		stage = d.stages[len(d.stages)-1].Name
	}
	if stage == "" {
		stage = "default"
	}
	set("TARGETSTAGE", stage, true)
	lex := shell.NewLex(d.escape)
	for _, a := range d.metaArgs {
		for _, kv := range a.Args {
			if v, ok := opt.BuildArgs[kv.Key]; ok {
				g.set(kv.Key, v)
				continue
			}
			if kv.Value == nil {
				continue
			}
			if err := g.setExpanded(lex, kv.Key, *kv.Value, g); err != nil {
				return nil, fmt.Errorf("parsing Dockerfile: ARG %s: %w", kv.Key, err)
			}
		}
	}
	return g, nil
}

func parsePlatform(s string) (ocispecs.Platform, bool) {
	if s == "" {
		return ocispecs.Platform{}, false
	}
	p, err := platforms.Parse(s)
	if err != nil {
		return ocispecs.Platform{}, false
	}
	return platforms.Normalize(p), true
}

// base is what a stage is built FROM: an earlier stage, an image, or a
// name that depends on a variable whose value is not known.
type base struct {
	stage int  // index of the base stage, or -1
	image bool // an image other than scratch, or a name not known
}

// bases expands every FROM with the meta-args, as buildDispatchStates
// does, and finds the stages they name.
func (d *dockerfile) bases(g *env) []base {
	lex := shell.NewLex(d.escape)
	out := make([]base, len(d.stages))
	for i, st := range d.stages {
		out[i] = base{stage: -1, image: true}
		res, err := lex.ProcessWordWithMatches(st.BaseName, g)
		if err != nil || g.unknownIn(res.Unmatched) != "" {
			continue // an image bkcache cannot name
		}
		// addState finds the base among the stages added before it.
		out[i].stage = stageIndex(d.stages, res.Result, i, false)
		out[i].image = out[i].stage < 0 && res.Result != "scratch"
	}
	return out
}

// mountOrSkip is one cache mount of a RUN, or why it is not carried.
type mountOrSkip struct {
	mount         Mount
	skip          *Skipped
	needsPlatform bool
}

// stageMounts walks stage i as dispatch does, keeping its environment
// (ENV and ARG) in e, and returns its cache mounts with their flags
// expanded in the environment of their RUN.
func (d *dockerfile) stageMounts(i int, e *env, g *env, buildArgs map[string]string) []mountOrSkip {
	st := d.stages[i]
	name := stageName(st, i)
	lex := shell.NewLex(d.escape)
	var out []mountOrSkip
	for _, cmd := range st.Commands {
		switch c := cmd.(type) {
		case *instructions.EnvCommand:
			// All values of one ENV see the environment before it.
			before := e.clone()
			for _, kv := range c.Env {
				if err := e.setExpanded(lex, kv.Key, kv.Value, before); err != nil {
					e.setUnknown(kv.Key, "")
				}
			}
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				switch v, ok := buildArgs[kv.Key]; {
				case ok:
					e.set(kv.Key, v)
				case kv.Value != nil:
					if err := e.setExpanded(lex, kv.Key, *kv.Value, e); err != nil {
						e.setUnknown(kv.Key, "")
					}
				default:
					// An ARG without a value takes the meta-arg's.
					e.inherit(kv.Key, g)
				}
			}
		case *instructions.RunCommand:
			out = append(out, d.runMounts(c, name, lex, e)...)
		}
	}
	return out
}

// runMounts parses each --mount of a RUN on its own with BuildKit's
// parser, so that one mount whose flags cannot be resolved does not hide
// the others.
func (d *dockerfile) runMounts(run *instructions.RunCommand, stage string, lex *shell.Lex, e *env) []mountOrSkip {
	node := d.runNodes[run]
	if node == nil {
		return nil
	}
	var out []mountOrSkip
	for _, flag := range node.Flags {
		raw, ok := strings.CutPrefix(flag, "--mount=")
		if !ok || !isCacheMount(raw) {
			continue
		}
		one := *node
		one.Flags = []string{flag}
		cmd, err := instructions.ParseCommand(&one)
		if err != nil {
			out = append(out, skip(rawTarget(raw), stage, err.Error(), false))
			continue
		}
		r, ok := cmd.(*instructions.RunCommand)
		if !ok {
			continue
		}
		var unknown, unset string
		err = r.Expand(func(word string) (string, error) {
			res, err := lex.ProcessWordWithMatches(word, e)
			if v := e.unknownIn(res.Unmatched); v != "" && unknown == "" {
				unknown = v
			}
			for v := range res.Unmatched {
				if unset == "" || v < unset {
					unset = v
				}
			}
			return res.Result, err
		})
		switch cause := e.unknown[unknown]; {
		case unknown != "" && cause != "":
			via := ""
			if cause != unknown {
				via = " (from $" + cause + ")"
			}
			out = append(out, skip(rawTarget(raw), stage, fmt.Sprintf("uses $%s%s, and the builder's platform is not known yet", unknown, via), true))
			continue
		case unknown != "":
			out = append(out, skip(rawTarget(raw), stage, fmt.Sprintf("uses $%s, whose value depends on the base image's ENV, which bkcache cannot read", unknown), false))
			continue
		case unset != "" && e.fromImage:
			out = append(out, skip(rawTarget(raw), stage, fmt.Sprintf("uses $%s, which no ARG or ENV of the Dockerfile sets (the base image's ENV may)", unset), false))
			continue
		case err != nil:
			out = append(out, skip(rawTarget(raw), stage, err.Error(), false))
			continue
		}
		for _, m := range instructions.GetMounts(r) {
			if m.Type != instructions.MountTypeCache {
				continue
			}
			mnt, reason := fromInstruction(m, stage)
			if reason != "" {
				out = append(out, skip(m.Target, stage, reason, false))
				continue
			}
			out = append(out, mountOrSkip{mount: mnt})
		}
	}
	return out
}

func skip(target, stage, reason string, needsPlatform bool) mountOrSkip {
	return mountOrSkip{skip: &Skipped{Target: target, Stage: stage, Reason: reason}, needsPlatform: needsPlatform}
}

// isCacheMount tells a cache mount from the others before its flags are
// expanded. A type given by a variable is left to the full parse.
func isCacheMount(raw string) bool {
	typ := ""
	for _, field := range strings.Split(raw, ",") {
		k, v, _ := strings.Cut(field, "=")
		if strings.EqualFold(strings.TrimSpace(k), "type") {
			typ = strings.ToLower(strings.Trim(v, `"' `))
		}
	}
	return typ == "cache" || strings.Contains(typ, "$")
}

// rawTarget is a mount's target as written, to name a mount whose flags
// did not parse.
func rawTarget(raw string) string {
	for _, field := range strings.Split(raw, ",") {
		k, v, _ := strings.Cut(field, "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "target", "dst", "destination":
			return v
		}
	}
	return raw
}

// fromInstruction maps a parsed mount the way dockerfile2llb's
// dispatchRunMounts does, or says why bkcache cannot reproduce its cache.
func fromInstruction(m *instructions.Mount, stage string) (Mount, string) {
	if m.From != "" {
		// The cache is then based on that stage's result, whose identity
		// only the builder knows.
		return Mount{}, "from= bases the cache on another image or stage"
	}
	if path.Join("/", m.Source) != "/" {
		return Mount{}, "source= mounts a subdirectory of the cache"
	}
	// dispatchRunMounts uses the cleaned target as the id, relative or
	// not: the WORKDIR only decides where the cache appears.
	target := path.Clean(m.Target)
	if m.Target == "" || target == "." || target == "/" {
		return Mount{}, "no target outside the root and the working directory"
	}
	mnt := Mount{
		ID:      m.CacheID,
		Target:  target,
		Mode:    DefaultMode,
		Sharing: SharingShared,
		Stage:   stage,
	}
	if mnt.ID == "" {
		mnt.ID = target
	}
	mnt.Targets = []string{m.Target}
	switch m.CacheSharing {
	case instructions.MountSharingPrivate:
		mnt.Sharing = SharingPrivate
	case instructions.MountSharingLocked:
		mnt.Sharing = SharingLocked
	}
	if m.UID != nil || m.GID != nil || m.Mode != nil {
		mnt.Owned = true
	}
	if m.UID != nil {
		mnt.UID = int(*m.UID)
	}
	if m.GID != nil {
		mnt.GID = int(*m.GID)
	}
	if m.Mode != nil {
		mnt.Mode = uint32(*m.Mode)
	}
	return mnt, ""
}

// identity is what makes BuildKit pick one cache directory.
func (m Mount) identity() string {
	if !m.Owned {
		return m.ID
	}
	return fmt.Sprintf("%s\x00%d\x00%d\x00%o", m.ID, m.UID, m.GID, m.Mode)
}

var unsafeKey = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Key names the mount's archive in a store: readable, safe in a file name,
// an object key or a tag, and different for every identity.
func (m Mount) Key() string {
	sum := sha256.Sum256([]byte(m.identity()))
	name := strings.Trim(unsafeKey.ReplaceAllString(m.ID, "-"), "-.")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	if name == "" {
		name = "cache"
	}
	return name + "-" + hex.EncodeToString(sum[:])[:12]
}

// String describes the mount for the log.
func (m Mount) String() string {
	s := m.ID
	if m.ID != m.Target {
		s += " (" + m.Target + ")"
	}
	if m.Owned {
		s += fmt.Sprintf(" uid=%d gid=%d mode=%04o", m.UID, m.GID, m.Mode)
	}
	if m.Sharing != SharingShared {
		s += " sharing=" + m.Sharing
	}
	return s
}

// neededStages marks the stages that building stages[target] evaluates,
// with the bases found by bases. It also returns notes on references
// BuildKit rejects.
func neededStages(stages []instructions.Stage, bases []base, target int) (map[int]bool, []string) {
	needed := map[int]bool{}
	var notes []string
	var visit func(i int)
	visit = func(i int) {
		if needed[i] {
			return
		}
		needed[i] = true
		var deps []int
		if b := bases[i].stage; b >= 0 {
			deps = append(deps, b)
		}
		for _, cmd := range stages[i].Commands {
			switch c := cmd.(type) {
			case *instructions.CopyCommand:
				if strings.Contains(c.From, "$") {
					// toCommand expands --from with no variables and
					// fails the build when that changes it.
					notes = append(notes, fmt.Sprintf("COPY --from=%s in stage %s: BuildKit does not expand variables in --from and fails the build; use a stage FROM %s AS <name> and copy from it", c.From, stageName(stages[i], i), c.From))
					continue
				}
				// COPY --from takes a stage's name or index.
				if j := stageIndex(stages, c.From, i, true); j >= 0 {
					deps = append(deps, j)
				}
			case *instructions.RunCommand:
				for _, m := range instructions.GetMounts(c) {
					// A mount's from= takes a stage name only (detectRunMount).
					if j := stageIndex(stages, m.From, i, false); j >= 0 {
						deps = append(deps, j)
					}
				}
			}
		}
		for _, d := range deps {
			visit(d)
		}
	}
	visit(target)
	return needed, notes
}

// stageIndex finds a stage among stages[:before] by name, or by index when
// byIndex; anything else is an image or a named context.
func stageIndex(stages []instructions.Stage, ref string, before int, byIndex bool) int {
	if ref == "" {
		return -1
	}
	for i := before - 1; i >= 0; i-- {
		if stages[i].Name != "" && strings.EqualFold(stages[i].Name, ref) {
			return i
		}
	}
	if !byIndex {
		return -1
	}
	if n, err := strconv.Atoi(ref); err == nil && n >= 0 && n < before {
		return n
	}
	return -1
}

func stageName(st instructions.Stage, i int) string {
	if st.Name != "" {
		return st.Name
	}
	return "stage-" + strconv.Itoa(i)
}

// env is a stage's environment as dispatch keeps it in the LLB state:
// ENV and ARG values, which a stage built FROM another inherits. Variables
// whose values cannot be known here (the builder's platform in a dry run,
// or values derived from it) are kept apart.
type env struct {
	keys []string
	vals map[string]string
	// unknown maps each variable whose value is not known to the platform
	// variable it comes from, or "" for the base image's ENV.
	unknown map[string]string
	// fromImage: the stage descends from an image, whose ENV is not
	// known here.
	fromImage bool
}

func newEnv() *env { return &env{vals: map[string]string{}, unknown: map[string]string{}} }

func (e *env) clone() *env {
	return &env{keys: slices.Clone(e.keys), vals: maps.Clone(e.vals), unknown: maps.Clone(e.unknown), fromImage: e.fromImage}
}

// Get and Keys make env a shell.EnvGetter.
func (e *env) Get(k string) (string, bool) { v, ok := e.vals[k]; return v, ok }
func (e *env) Keys() []string              { return e.keys }

func (e *env) set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
	delete(e.unknown, k)
}

func (e *env) setUnknown(k, cause string) {
	if _, ok := e.vals[k]; ok {
		delete(e.vals, k)
		e.keys = slices.DeleteFunc(e.keys, func(s string) bool { return s == k })
	}
	e.unknown[k] = cause
}

// setExpanded sets k to word expanded in from; a value that uses an
// unknown variable is unknown, and so is one that uses a variable the
// Dockerfile does not set in a stage whose base image may set it
// (ENV GOCACHE=$HOME/.cache/go).
func (e *env) setExpanded(lex *shell.Lex, k, word string, from *env) error {
	res, err := lex.ProcessWordWithMatches(word, from)
	if err != nil {
		return err
	}
	if v := from.unknownIn(res.Unmatched); v != "" {
		e.setUnknown(k, from.unknown[v])
		return nil
	}
	if from.fromImage && len(res.Unmatched) > 0 {
		e.setUnknown(k, "")
		return nil
	}
	e.set(k, res.Result)
	return nil
}

// inherit gives k the meta-arg's value, as dispatchArg does for an ARG
// without a default.
func (e *env) inherit(k string, g *env) {
	if v, ok := g.vals[k]; ok {
		e.set(k, v)
	} else if cause, ok := g.unknown[k]; ok {
		e.setUnknown(k, cause)
	}
}

// unknownIn returns one of the unmatched variables whose value is not
// known, or "".
func (e *env) unknownIn(unmatched map[string]struct{}) string {
	var found string
	for v := range unmatched {
		if _, ok := e.unknown[v]; ok && (found == "" || v < found) {
			found = v
		}
	}
	return found
}
