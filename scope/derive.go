package scope

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Options are the user's choices that shape the plan.
type Options struct {
	// Name is the cache-scope input: which build this is. Default "buildkit".
	Name string
	// Platform is the target platform(s), e.g. "linux/arm64"; it keeps the
	// caches of matrix jobs apart.
	Platform string
	// AllowUntrustedExport lets fork pull requests and pull_request_target
	// runs of fork pull requests write their own pr-N scope, which only runs
	// of that same fork pull request read. They never write a branch scope.
	AllowUntrustedExport bool
	// DefaultBranch is used when the payload has no repository.default_branch
	// (a CLI run); empty means the default branch is not imported.
	DefaultBranch string
}

// Kind is the namespace a scope belongs to.
type Kind string

const (
	KindBranch      Kind = "branch"
	KindTag         Kind = "tag"
	KindPullRequest Kind = "pull-request"
	KindMergeQueue  Kind = "merge-queue"
)

// Scope is one cache location.
type Scope struct {
	Key    string // name-safe: "main", "pr-42", "tag-v1.2.3", "feature-a--3f2a9c01"
	Ref    string // what it stands for: refs/heads/main, refs/pull/42/merge, ...
	Reason string // why it is in the plan: "this branch", "PR base", ...
	Kind   Kind
}

// Name is the name a registry tag, local directory, s3 or azblob "name" uses
// for this scope in build (pass Plan.Build): "buildkit_main".
func (s Scope) Name(build string) string {
	return build + nameSep + s.Key
}

// Plan is the derived cache plan of one build.
type Plan struct {
	// Build is the sanitized build name (cache-scope + platform). It is the
	// whole scope for the gha backend, which isolates refs itself.
	Build string
	// Export is where this build may write; nil means read-only.
	Export *Scope
	// Imports are the scopes to read, most specific first, no duplicates.
	Imports []Scope
	// Trusted reports whether the event runs code pushed by someone with
	// write access in a context that may write caches.
	Trusted bool
	// Deleted: the event deleted the ref, so the build imports and
	// exports nothing at all.
	Deleted bool
	// Notes explain decisions worth showing in the log.
	Notes []string
	// Event and DefaultBranch are what the plan was derived from.
	Event         string
	DefaultBranch string
}

// Reasons, shared with tests and the log.
const (
	ReasonThisBranch     = "this branch"
	ReasonDefaultBranch  = "default branch"
	ReasonThisPR         = "this PR"
	ReasonPRHead         = "PR head branch"
	ReasonPRBase         = "PR base"
	ReasonTag            = "tag"
	ReasonMergeQueue     = "merge queue"
	ReasonMergeQueueBase = "merge queue base"
)

var mergeQueueRef = regexp.MustCompile(`^gh-readonly-queue/(.+)/pr-[0-9]+-[0-9a-f]+$`)

type planner struct {
	ev   Event
	opts Options
	p    Plan
}

// Derive computes the cache plan for ev.
func Derive(ev Event, opts Options) (Plan, error) {
	pl := &planner{ev: ev, opts: opts}
	pl.p.Build = buildName(opts.Name, opts.Platform)
	pl.p.Event = ev.Name
	pl.p.DefaultBranch = str(ev.Payload, "repository", "default_branch")
	if pl.p.DefaultBranch == "" {
		pl.p.DefaultBranch = branchName(opts.DefaultBranch)
	}
	if pl.p.DefaultBranch == "" {
		pl.note("default branch unknown (no repository.default_branch in the payload, no default branch option): not importing it")
	}

	var err error
	switch ev.Name {
	case "push":
		err = pl.push()
	case "pull_request", "pull_request_review", "pull_request_review_comment":
		err = pl.pullRequest()
	case "pull_request_target":
		err = pl.pullRequestTarget()
	case "merge_group":
		err = pl.mergeGroup()
	case "workflow_dispatch", "schedule", "repository_dispatch", "release":
		err = pl.trustedRef()
	case "workflow_run":
		err = pl.workflowRun()
	case "issue_comment":
		pl.issueComment()
	case "delete":
		pl.p.Deleted = true
		pl.note(fmt.Sprintf("%s %q was deleted: nothing to build, no cache scopes",
			firstNonEmpty(str(ev.Payload, "ref_type"), "ref"), str(ev.Payload, "ref")))
	case "":
		err = errors.New("event name is empty")
	default:
		err = pl.unknown()
	}
	if err != nil {
		return Plan{}, fmt.Errorf("deriving cache scopes for %s event: %w", ev.Name, err)
	}
	pl.p.Imports = dedupe(pl.p.Imports)
	return pl.p, nil
}

func (pl *planner) note(s string) { pl.p.Notes = append(pl.p.Notes, s) }

func (pl *planner) add(s Scope) { pl.p.Imports = append(pl.p.Imports, s) }

func (pl *planner) export(s Scope) {
	pl.p.Export = &s
}

func (pl *planner) branch(name, reason string) Scope {
	if name == pl.p.DefaultBranch && reason == ReasonThisBranch {
		reason = ReasonDefaultBranch
	}
	return Scope{Key: branchKey(name), Ref: "refs/heads/" + name, Reason: reason, Kind: KindBranch}
}

func (pl *planner) importDefault() {
	if pl.p.DefaultBranch != "" {
		pl.add(pl.branch(pl.p.DefaultBranch, ReasonDefaultBranch))
	}
}

func tagScope(tag string) Scope {
	return Scope{Key: tagKey(tag), Ref: "refs/tags/" + tag, Reason: ReasonTag, Kind: KindTag}
}

func prScope(n int64) Scope {
	return Scope{Key: prKey(n), Ref: fmt.Sprintf("refs/pull/%d/merge", n), Reason: ReasonThisPR, Kind: KindPullRequest}
}

func mqScope(base string) Scope {
	return Scope{Key: mergeQueueKey(base), Ref: "merge queue of refs/heads/" + base, Reason: ReasonMergeQueue, Kind: KindMergeQueue}
}

// fromRef plans a trusted run on a branch or tag: write this ref, read it and
// the default branch. Tags read only the default branch besides themselves
// ("Workflow runs also cannot restore caches created for different tag names").
func (pl *planner) fromRef(ref string) error {
	kind, name := parseRef(ref)
	switch kind {
	case refBranch:
		s := pl.branch(name, ReasonThisBranch)
		pl.export(s)
		pl.add(s)
	case refTag:
		s := tagScope(name)
		pl.export(s)
		pl.add(s)
	default:
		return fmt.Errorf("unsupported ref %q", ref)
	}
	pl.p.Trusted = true
	pl.importDefault()
	return nil
}

func (pl *planner) push() error {
	ref := pl.ev.Ref
	if ref == "" {
		ref = str(pl.ev.Payload, "ref")
	}
	if boolean(pl.ev.Payload, "deleted") {
		pl.p.Deleted = true
		pl.note(fmt.Sprintf("%s was deleted: nothing to build, no cache scopes", ref))
		return nil
	}
	if ref == "" {
		return errors.New("no ref (GITHUB_REF)")
	}
	return pl.fromRef(ref)
}

// trustedRef covers events only writers can trigger, run on GITHUB_REF:
// workflow_dispatch (chosen branch or tag), schedule and repository_dispatch
// (default branch), release (the release's tag).
func (pl *planner) trustedRef() error {
	ref := pl.ev.Ref
	if ref == "" && pl.ev.Name == "release" {
		if tag := str(pl.ev.Payload, "release", "tag_name"); tag != "" {
			ref = "refs/tags/" + tag
		}
	}
	if ref == "" && pl.p.DefaultBranch != "" && (pl.ev.Name == "schedule" || pl.ev.Name == "repository_dispatch") {
		ref = "refs/heads/" + pl.p.DefaultBranch
	}
	if ref == "" {
		return errors.New("no ref (GITHUB_REF)")
	}
	return pl.fromRef(ref)
}

// prInfo is what pull_request* payloads say about the pull request.
type prInfo struct {
	number     int64
	head, base string // branch names
	fromFork   bool
}

func (pl *planner) prInfo() (prInfo, error) {
	pr := object(pl.ev.Payload, "pull_request")
	var info prInfo
	var ok bool
	if info.number, ok = number(pr, "number"); !ok {
		if info.number, ok = number(pl.ev.Payload, "number"); !ok {
			if info.number, ok = pullNumberFromRef(pl.ev.Ref); !ok {
				return info, errors.New("no pull request number in the payload or GITHUB_REF")
			}
		}
	}
	info.head = firstNonEmpty(pl.ev.HeadRef, str(pr, "head", "ref"))
	info.base = branchName(firstNonEmpty(pl.ev.BaseRef, str(pr, "base", "ref")))
	info.fromFork = isFork(pr, pl.ev.Repository, str(pl.ev.Payload, "repository", "full_name"))
	return info, nil
}

// isFork reports whether the PR's head lives in another repository. A missing
// head repository (deleted fork) or a missing payload counts as a fork: when
// in doubt, read-only.
func isFork(pr map[string]any, repos ...string) bool {
	head := str(pr, "head", "repo", "full_name")
	if head == "" {
		return true
	}
	base := str(pr, "base", "repo", "full_name")
	if base == "" {
		base = firstNonEmpty(repos...)
	}
	if !strings.EqualFold(head, base) {
		return true
	}
	// Same name but the head claims to be a fork of a non-fork base: the
	// payload is inconsistent, so trust nothing.
	return boolean(pr, "head", "repo", "fork") && !boolean(pr, "base", "repo", "fork")
}

// pullRequest: the run's ref is refs/pull/N/merge; GitHub writes its cache
// there and lets it read the base and default branch.
func (pl *planner) pullRequest() error {
	info, err := pl.prInfo()
	if err != nil {
		return err
	}
	this := prScope(info.number)
	pl.add(this)
	if info.fromFork {
		pl.note(fmt.Sprintf("pull request #%d comes from a fork: untrusted", info.number))
		if pl.opts.AllowUntrustedExport {
			pl.export(this)
			pl.note(fmt.Sprintf("untrusted export allowed: writing only %s, which no trusted ref reads", this.Key))
		} else {
			pl.note("read-only (set allow-untrusted-export to let fork PRs write their own pr-N scope)")
		}
	} else {
		pl.p.Trusted = true
		pl.export(this)
		// Not a GitHub rule: external backends can also read the head
		// branch's own cache, written by pushes from the same repository.
		if info.head != "" {
			pl.add(pl.branch(info.head, ReasonPRHead))
		}
	}
	if info.base != "" {
		pl.add(pl.branch(info.base, ReasonPRBase))
	}
	pl.importDefault()
	return nil
}

// pullRequestTarget runs the base branch's workflow with secrets and a write
// token, in the base branch's cache scope; it is the classic way untrusted
// PR code gets privileges, so it reads only trusted scopes and writes none.
func (pl *planner) pullRequestTarget() error {
	info, err := pl.prInfo()
	if err != nil {
		return err
	}
	pl.note(fmt.Sprintf("pull_request_target for #%d may run PR code with the base repository's privileges: untrusted, imports only trusted scopes", info.number))
	switch {
	case !pl.opts.AllowUntrustedExport:
		pl.note("read-only")
	case info.fromFork:
		s := prScope(info.number)
		pl.export(s)
		pl.note(fmt.Sprintf("untrusted export allowed: writing only %s, which no trusted ref reads", s.Key))
	default:
		pl.note(fmt.Sprintf("read-only even with allow-untrusted-export: #%d is a same-repository PR whose trusted pull_request runs read %s", info.number, prKey(info.number)))
	}
	if info.base != "" {
		pl.add(pl.branch(info.base, ReasonPRBase))
	}
	pl.importDefault()
	return nil
}

// mergeGroup: the ref is refs/heads/gh-readonly-queue/<base>/pr-N-<sha>, a
// branch that exists for one group only. All groups for a base share one
// merge-queue scope instead, so the next group finds the last one's cache.
func (pl *planner) mergeGroup() error {
	base := branchName(str(pl.ev.Payload, "merge_group", "base_ref"))
	if base == "" {
		_, name := parseRef(pl.ev.Ref)
		if m := mergeQueueRef.FindStringSubmatch(name); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		return errors.New("no merge_group.base_ref in the payload")
	}
	pl.p.Trusted = true
	s := mqScope(base)
	pl.export(s)
	pl.add(s)
	pl.add(pl.branch(base, ReasonMergeQueueBase))
	pl.importDefault()
	return nil
}

// issueComment runs the default branch's workflow with secrets, triggered by
// anyone who can comment; the payload does not say whether a PR comes from a
// fork, so it never writes.
func (pl *planner) issueComment() {
	if n, ok := number(pl.ev.Payload, "issue", "number"); ok && lookup(pl.ev.Payload, "issue", "pull_request") != nil {
		pl.note(fmt.Sprintf("comment on pull request #%d: untrusted, read-only", n))
	} else {
		pl.note("issue comment: untrusted, read-only")
	}
	if pl.opts.AllowUntrustedExport {
		pl.note("allow-untrusted-export does not apply: an issue_comment payload cannot tell a fork PR from a same-repository one")
	}
	pl.importDefault()
}

// workflowRun runs in the default branch's context with secrets, after
// another workflow run. It is treated like the run that triggered it when
// that run was trusted and from this repository, and read-only otherwise.
func (pl *planner) workflowRun() error {
	wr := object(pl.ev.Payload, "workflow_run")
	if wr == nil {
		return errors.New("no workflow_run in the payload")
	}
	trigger := str(wr, "event")
	headBranch := str(wr, "head_branch")
	repo := firstNonEmpty(str(wr, "repository", "full_name"), str(pl.ev.Payload, "repository", "full_name"), pl.ev.Repository)
	headRepo := str(wr, "head_repository", "full_name")

	readOnly := func(why string) error {
		pl.p.Trusted = false
		pl.p.Export = nil
		pl.p.Imports = nil
		pl.note(fmt.Sprintf("workflow_run after a %s run: %s; read-only, imports only the default branch", trigger, why))
		pl.importDefault()
		return nil
	}
	if headRepo == "" || repo == "" || !strings.EqualFold(headRepo, repo) {
		return readOnly(fmt.Sprintf("its head repository %q is not %q", headRepo, repo))
	}
	if headBranch == "" {
		return readOnly("no head branch")
	}
	switch trigger {
	case "pull_request", "pull_request_review", "pull_request_review_comment":
		prs, _ := wr["pull_requests"].([]any)
		var pr map[string]any
		if len(prs) > 0 {
			pr, _ = prs[0].(map[string]any)
		}
		n, ok := number(pr, "number")
		if !ok {
			return readOnly("no pull request number")
		}
		s := prScope(n)
		pl.p.Trusted = true
		pl.export(s)
		pl.add(s)
		pl.add(pl.branch(headBranch, ReasonPRHead))
		if base := str(pr, "base", "ref"); base != "" {
			pl.add(pl.branch(base, ReasonPRBase))
		}
		pl.importDefault()
		return nil
	case "release":
		return pl.fromRef("refs/tags/" + strings.TrimPrefix(headBranch, "refs/tags/"))
	case "merge_group":
		m := mergeQueueRef.FindStringSubmatch(headBranch)
		if m == nil {
			return readOnly("head branch is not a merge queue branch")
		}
		s := mqScope(m[1])
		pl.p.Trusted = true
		pl.export(s)
		pl.add(s)
		pl.add(pl.branch(m[1], ReasonMergeQueueBase))
		pl.importDefault()
		return nil
	case "push", "workflow_dispatch", "schedule", "repository_dispatch":
		// head_branch is usually a bare name, and a tag push shows its tag
		// name there; a full ref says which it is.
		if kind, name := parseRef(headBranch); kind == refTag {
			pl.note(fmt.Sprintf("workflow_run after %s of tag %q: planned as that tag", trigger, name))
			return pl.fromRef(headBranch)
		} else if kind == refBranch {
			headBranch = name
		}
		pl.note(fmt.Sprintf("workflow_run after %s on %q: planned as that branch (the payload does not say whether a bare name is a branch or a tag)", trigger, headBranch))
		return pl.fromRef("refs/heads/" + headBranch)
	default:
		return readOnly("the triggering event is untrusted or unknown")
	}
}

// unknown events read their ref and the default branch but never write:
// many of them (issues, fork, watch, ...) are triggered by anyone.
func (pl *planner) unknown() error {
	pl.note(fmt.Sprintf("event %q is not one bkcache plans writes for: read-only", pl.ev.Name))
	switch kind, name := parseRef(pl.ev.Ref); kind {
	case refBranch:
		pl.add(pl.branch(name, ReasonThisBranch))
	case refTag:
		pl.add(tagScope(name))
	}
	pl.importDefault()
	return nil
}

// dedupe keeps the first occurrence of each key and adds the reasons of
// later ones to it ("PR base, default branch").
func dedupe(in []Scope) []Scope {
	at := make(map[string]int, len(in))
	out := in[:0:0]
	for _, s := range in {
		if i, ok := at[s.Key]; ok {
			if !strings.Contains(out[i].Reason, s.Reason) {
				out[i].Reason += ", " + s.Reason
			}
			continue
		}
		at[s.Key] = len(out)
		out = append(out, s)
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
