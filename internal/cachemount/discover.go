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
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
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
}

// Discover parses a Dockerfile and returns the cache mounts of the stages
// that target (the last stage when empty) needs: its own, those it is
// built FROM, and those it copies or mounts from, transitively.
func Discover(dockerfile []byte, target string) (Found, error) {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return Found{}, fmt.Errorf("parsing Dockerfile: %w", err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return Found{}, fmt.Errorf("parsing Dockerfile: %w", err)
	}
	if len(stages) == 0 {
		return Found{}, fmt.Errorf("parsing Dockerfile: no FROM")
	}
	if err := parseMountFlags(stages); err != nil {
		return Found{}, fmt.Errorf("parsing Dockerfile: %w", err)
	}
	last := len(stages) - 1
	if target != "" {
		last = stageIndex(stages, target, len(stages))
		if last < 0 {
			return Found{}, fmt.Errorf("target stage %q not found in the Dockerfile", target)
		}
	}
	needed := neededStages(stages, last)

	var f Found
	byIdentity := map[string]int{}
	for i, st := range stages {
		if !needed[i] {
			continue
		}
		name := stageName(st, i)
		for _, cmd := range st.Commands {
			run, ok := cmd.(*instructions.RunCommand)
			if !ok {
				continue
			}
			for _, m := range instructions.GetMounts(run) {
				if m.Type != instructions.MountTypeCache {
					continue
				}
				mnt, reason := fromInstruction(m, name)
				if reason != "" {
					f.Skipped = append(f.Skipped, Skipped{Target: m.Target, Stage: name, Reason: reason})
					continue
				}
				id := mnt.identity()
				if j, ok := byIdentity[id]; ok {
					if !slices.Contains(f.Mounts[j].Targets, m.Target) {
						f.Mounts[j].Targets = append(f.Mounts[j].Targets, m.Target)
					}
					continue
				}
				byIdentity[id] = len(f.Mounts)
				f.Mounts = append(f.Mounts, mnt)
			}
		}
	}
	return f, nil
}

// fromInstruction maps a parsed mount the way dockerfile2llb's
// dispatchRunMounts does, or says why bkcache cannot reproduce its cache.
func fromInstruction(m *instructions.Mount, stage string) (Mount, string) {
	for _, v := range []string{m.Target, m.CacheID} {
		if strings.Contains(v, "$") {
			return Mount{}, "uses a build variable; name the mount with a literal id= and target="
		}
	}
	if m.From != "" {
		// The cache is then based on that stage's result, whose identity
		// only the builder knows.
		return Mount{}, "from= bases the cache on another image or stage"
	}
	if path.Join("/", m.Source) != "/" {
		return Mount{}, "source= mounts a subdirectory of the cache"
	}
	if !path.IsAbs(m.Target) {
		return Mount{}, "relative target: its directory depends on WORKDIR"
	}
	mnt := Mount{
		ID:      m.CacheID,
		Target:  path.Clean(m.Target),
		Mode:    DefaultMode,
		Sharing: SharingShared,
		Stage:   stage,
	}
	if mnt.ID == "" {
		mnt.ID = mnt.Target
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

// parseMountFlags fills in the --mount flags of every RUN. The parser
// leaves them for the frontend, which expands build variables first;
// values are kept literally here, and fromInstruction skips the mounts
// whose identity depends on a variable.
func parseMountFlags(stages []instructions.Stage) error {
	literal := func(word string) (string, error) { return word, nil }
	for _, st := range stages {
		for _, cmd := range st.Commands {
			if run, ok := cmd.(*instructions.RunCommand); ok {
				if err := run.Expand(literal); err != nil {
					return err
				}
			}
		}
	}
	return nil
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

// neededStages marks the stages that building stages[target] evaluates.
func neededStages(stages []instructions.Stage, target int) map[int]bool {
	needed := map[int]bool{}
	var visit func(i int)
	visit = func(i int) {
		if needed[i] {
			return
		}
		needed[i] = true
		st := stages[i]
		deps := []string{st.BaseName}
		for _, cmd := range st.Commands {
			switch c := cmd.(type) {
			case *instructions.CopyCommand:
				deps = append(deps, c.From)
			case *instructions.RunCommand:
				for _, m := range instructions.GetMounts(c) {
					deps = append(deps, m.From)
				}
			}
		}
		for _, d := range deps {
			// Only earlier stages can be referenced; anything else is an
			// image or a named context.
			if j := stageIndex(stages, d, i); j >= 0 {
				visit(j)
			}
		}
	}
	visit(target)
	return needed
}

// stageIndex finds a stage among stages[:before] by name or index.
func stageIndex(stages []instructions.Stage, ref string, before int) int {
	if ref == "" {
		return -1
	}
	ref = strings.ToLower(ref)
	for i := before - 1; i >= 0; i-- {
		if stages[i].Name != "" && strings.EqualFold(stages[i].Name, ref) {
			return i
		}
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
