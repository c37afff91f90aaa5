package plan

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"

	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/scope"
)

// inlineImports lists where an inline cache can be read: it lives in the
// config of pushed images, and BuildKit has no inline importer, so each
// source is a type=registry import of an image tag. The sources are
//   - every tag of the tags input (the image this build replaces), then
//   - per import scope and image repository, the tag docker/metadata-action
//     gives that ref by default (branch name, pr-N, git tag), plus "latest"
//     for the default branch.
//
// Tags that do not exist cost one failed lookup; BuildKit skips them.
func inlineImports(sp scope.Plan, tags []string) ([]cacheentry.Entry, []string, error) {
	var refs, repos []string
	seen := map[string]bool{}
	add := func(r string) {
		if !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	for _, t := range tags {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		named, err := reference.ParseNormalizedNamed(t)
		if err != nil {
			return nil, nil, fmt.Errorf("inline: tag %q: %w", t, err)
		}
		add(t)
		repo := reference.FamiliarName(named)
		if !contains(repos, repo) {
			repos = append(repos, repo)
		}
	}
	if len(repos) == 0 {
		return nil, []string{"inline cache: no tags input, so nothing to import it from; the export still embeds it in the image"}, nil
	}
	for _, s := range sp.Imports {
		for _, tag := range imageTags(s) {
			for _, repo := range repos {
				add(repo + ":" + tag)
			}
		}
	}
	var out []cacheentry.Entry
	for _, r := range refs {
		e := cacheentry.Entry{Type: cacheentry.TypeRegistry, Attrs: map[string]string{"ref": r}}
		if err := e.Validate(cacheentry.Import); err != nil {
			return nil, nil, fmt.Errorf("inline: import from %q: %w", r, err)
		}
		out = append(out, e)
	}
	note := "inline cache is imported from the tags input and from <image>:<branch|pr-N|tag> of each scope " +
		"(docker/metadata-action's default tags; \"latest\" for the default branch); " +
		"images tagged otherwise need a cache-from line"
	return out, []string{note}, nil
}

// invalidTagChars are what docker/metadata-action replaces with '-'.
var invalidTagChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// imageTags are the tags docker/metadata-action gives s's ref by default.
func imageTags(s scope.Scope) []string {
	var out []string
	switch {
	case s.Kind == scope.KindPullRequest:
		out = append(out, s.Key) // "pr-42", as type=ref,event=pr
	case strings.HasPrefix(s.Ref, "refs/heads/"):
		out = append(out, invalidTagChars.ReplaceAllString(strings.TrimPrefix(s.Ref, "refs/heads/"), "-"))
	case strings.HasPrefix(s.Ref, "refs/tags/"):
		out = append(out, invalidTagChars.ReplaceAllString(strings.TrimPrefix(s.Ref, "refs/tags/"), "-"))
	case s.Key != "":
		out = append(out, s.Key)
	}
	if s.Reason == scope.ReasonDefaultBranch {
		out = append(out, "latest")
	}
	var valid []string
	for _, t := range out {
		// A tag starts with [A-Za-z0-9_] and has at most 128 characters.
		if t != "" && len(t) <= 128 && t[0] != '.' && t[0] != '-' {
			valid = append(valid, t)
		}
	}
	return valid
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
