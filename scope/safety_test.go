package scope

import (
	"fmt"
	"testing"
)

// trustRank orders plans by how much the code they build is trusted:
// untrusted < pull request < other branch/tag/merge queue < default branch.
func trustRank(p Plan) int {
	switch {
	case !p.Trusted:
		return 0
	case p.Export != nil && p.Export.Kind == KindPullRequest:
		return 1
	case p.Export != nil && p.Export.Kind == KindBranch && p.Export.Ref == "refs/heads/"+p.DefaultBranch:
		return 3
	default:
		return 2
	}
}

type namedPlan struct {
	name string
	plan Plan
}

// allPlans derives every fixture with and without AllowUntrustedExport, plus
// the trusted runs their refs imply: pushes to each default branch, PR base
// and PR head branch, and adversarial branches named like other namespaces.
func allPlans(t *testing.T) []namedPlan {
	t.Helper()
	var out []namedPlan
	derive := func(name string, ev Event, opts Options) {
		p, err := Derive(ev, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, namedPlan{name, p})
	}
	for _, f := range fixtures {
		ev := f.event(t)
		for _, allow := range []bool{false, true} {
			derive(fmt.Sprintf("%s (allow-untrusted-export=%v)", f.name, allow), ev, Options{AllowUntrustedExport: allow})
		}
		payload := map[string]any{"repository": ev.Payload["repository"]}
		branches := []string{str(ev.Payload, "repository", "default_branch"),
			str(ev.Payload, "pull_request", "base", "ref"), str(ev.Payload, "pull_request", "head", "ref"),
			"pr-42", "pr-17", "tag-v1.2.3", "mq-trunk", "mq-master"}
		for _, b := range branches {
			if b != "" {
				derive("push to "+b, Event{Name: "push", Ref: "refs/heads/" + b, Payload: payload}, Options{})
			}
		}
	}
	return out
}

// TestSafetyInvariant: a plan never exports to a scope that a more trusted
// plan imports.
func TestSafetyInvariant(t *testing.T) {
	plans := allPlans(t)
	for _, a := range plans {
		if a.plan.Export == nil {
			continue
		}
		t.Run(a.name, func(t *testing.T) {
			for _, b := range plans {
				if trustRank(b.plan) <= trustRank(a.plan) {
					continue
				}
				for _, s := range b.plan.Imports {
					if s.Key == a.plan.Export.Key {
						t.Errorf("%s (rank %d) exports %q, which %s (rank %d) imports as %q",
							a.name, trustRank(a.plan), s.Key, b.name, trustRank(b.plan), s.Reason)
					}
				}
			}
		})
	}
}

// TestSafetyRules checks the named rules one by one for every event kind.
func TestSafetyRules(t *testing.T) {
	untrustedByDefault := map[string]bool{
		"pull_request fork": true, "pull_request_target fork": true, "pull_request_target same repo": true,
		"issue_comment on PR": true, "workflow_run after fork PR": true,
	}
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			ev := f.event(t)
			for _, allow := range []bool{false, true} {
				p, err := Derive(ev, Options{AllowUntrustedExport: allow})
				if err != nil {
					t.Fatal(err)
				}
				if untrustedByDefault[f.name] && p.Trusted {
					t.Errorf("allow=%v: plan is trusted", allow)
				}
				if p.Export == nil {
					continue
				}
				e := *p.Export
				if untrustedByDefault[f.name] && !allow {
					t.Errorf("untrusted event exports %q by default", e.Key)
				}
				if !p.Trusted && e.Kind != KindPullRequest {
					t.Errorf("allow=%v: untrusted event exports to %s scope %q, not an isolated PR scope", allow, e.Kind, e.Key)
				}
				if e.Kind == KindPullRequest {
					for _, b := range []string{p.DefaultBranch, str(ev.Payload, "pull_request", "base", "ref")} {
						if b != "" && e.Key == branchKey(b) {
							t.Errorf("PR exports to branch %q", b)
						}
					}
				}
				if kind, _ := parseRef(ev.Ref); kind == refTag || ev.Name == "release" {
					if e.Kind != KindTag {
						t.Errorf("tag run exports to %s scope %q", e.Kind, e.Key)
					}
				}
			}
		})
	}
}
