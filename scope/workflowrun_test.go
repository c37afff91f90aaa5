package scope

import "testing"

// TestWorkflowRunHeadRef: a full ref in workflow_run.head_branch says
// whether the triggering push was a tag or a branch.
func TestWorkflowRunHeadRef(t *testing.T) {
	for _, tt := range []struct {
		head, trigger string
		want          Scope
	}{
		{"refs/tags/v1.2.3", "push", Scope{Key: "tag-v1.2.3", Ref: "refs/tags/v1.2.3", Kind: KindTag}},
		{"refs/heads/feature", "push", Scope{Key: "feature", Ref: "refs/heads/feature", Kind: KindBranch}},
		{"feature", "push", Scope{Key: "feature", Ref: "refs/heads/feature", Kind: KindBranch}},
		{"v2.0.0", "release", Scope{Key: "tag-v2.0.0", Ref: "refs/tags/v2.0.0", Kind: KindTag}},
		{"refs/tags/v2.0.0", "release", Scope{Key: "tag-v2.0.0", Ref: "refs/tags/v2.0.0", Kind: KindTag}},
	} {
		t.Run(tt.trigger+" "+tt.head, func(t *testing.T) {
			ev := Event{Name: "workflow_run", Ref: "refs/heads/main", Payload: map[string]any{
				"repository": map[string]any{"full_name": "a/b", "default_branch": "main"},
				"workflow_run": map[string]any{"event": tt.trigger, "head_branch": tt.head,
					"head_repository": map[string]any{"full_name": "a/b"}},
			}}
			p, err := Derive(ev, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if e := p.Export; e == nil || e.Key != tt.want.Key || e.Ref != tt.want.Ref || e.Kind != tt.want.Kind || !p.Trusted {
				t.Errorf("export %+v (trusted %v), want %+v", p.Export, p.Trusted, tt.want)
			}
		})
	}
}

// TestDeletedPlans: a deleted ref's plan says so, and reads and writes no
// scope.
func TestDeletedPlans(t *testing.T) {
	for _, name := range []string{"push deleted branch", "delete branch"} {
		p, err := Derive(fixtureByName(t, name).event(t), Options{AllowUntrustedExport: true})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Deleted || p.Export != nil || len(p.Imports) != 0 || p.Trusted {
			t.Errorf("%s: %+v", name, p)
		}
	}
}
