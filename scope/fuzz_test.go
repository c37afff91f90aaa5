package scope

import (
	"errors"
	"strings"
	"testing"
)

// FuzzKeys: every key is a valid name, clean names stay as they are, and a
// changed name is always hashed (so it cannot equal any clean name).
// Seeds: testdata/fuzz/FuzzKeys.
func FuzzKeys(f *testing.F) {
	for _, s := range []string{"main", "feature/a", "feature-a", "Main", "pr-42", "日本", "a--b", ".x", strings.Repeat("z", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		keys := map[string]string{
			"branch":      branchKey(name),
			"tag":         tagKey(name),
			"merge queue": mergeQueueKey(name),
		}
		for what, k := range keys {
			if !validKey(k) {
				t.Fatalf("%s key %q of %q is invalid", what, k, name)
			}
			if strings.Contains(k, "_") {
				t.Fatalf("%s key %q contains the name separator", what, k)
			}
		}
		bk := keys["branch"]
		clean := sanitize(name) == name && name != "" && len(name) <= MaxKeyLen &&
			!strings.HasPrefix(name, prPrefix) && !strings.HasPrefix(name, tagPrefix) && !strings.HasPrefix(name, mqPrefix)
		if clean != (bk == name) {
			t.Fatalf("branchKey(%q) = %q; clean=%v", name, bk, clean)
		}
		if !clean && !strings.Contains(bk, hashSep) {
			t.Fatalf("changed name %q has unhashed key %q", name, bk)
		}
		if clean && strings.Contains(bk, hashSep) {
			t.Fatalf("clean key %q contains %q", bk, hashSep)
		}
		if b := buildName(name, name); len(b) > MaxBuildLen || !validKey(b) || strings.Contains(b, "_") {
			t.Fatalf("buildName(%q) = %q is invalid", name, b)
		}
	})
}

// FuzzEventFromEnv: any event name, ref and payload either fail cleanly or
// produce a plan whose names are valid and whose untrusted exports are
// isolated PR scopes. Seeds: testdata/fuzz/FuzzEventFromEnv (real payloads).
func FuzzEventFromEnv(f *testing.F) {
	f.Add("push", "refs/heads/main", []byte(`{"ref":"refs/heads/main","repository":{"default_branch":"main"}}`))
	f.Add("pull_request", "refs/pull/1/merge", []byte(`{"number":1,"pull_request":{"number":1,"head":{"repo":null}}}`))
	f.Add("workflow_run", "refs/heads/main", []byte(`{"workflow_run":{"event":"push","head_branch":"x","head_repository":{"full_name":"a/b"},"repository":{"full_name":"a/b"}}}`))
	f.Add("issue_comment", "", []byte(`null`))
	f.Fuzz(func(t *testing.T, name, ref string, payload []byte) {
		env := map[string]string{
			"GITHUB_EVENT_NAME": name, "GITHUB_REF": ref, "GITHUB_REPOSITORY": "a/b",
			"GITHUB_HEAD_REF": "head", "GITHUB_BASE_REF": "base", "GITHUB_EVENT_PATH": "/event.json",
		}
		read := func(path string) ([]byte, error) {
			if path != "/event.json" {
				return nil, errors.New("unexpected path")
			}
			return payload, nil
		}
		ev, err := EventFromEnv(func(k string) string { return env[k] }, read)
		if err != nil {
			return
		}
		if ev.Payload == nil {
			t.Fatal("no error and no payload")
		}
		for _, allow := range []bool{false, true} {
			p, err := Derive(ev, Options{AllowUntrustedExport: allow, Platform: ref})
			if err != nil {
				continue
			}
			if !validKey(p.Build) {
				t.Fatalf("invalid build %q", p.Build)
			}
			seen := map[string]bool{}
			for _, s := range p.Imports {
				if !validKey(s.Key) || seen[s.Key] {
					t.Fatalf("invalid or duplicate import %q in %v", s.Key, p.Imports)
				}
				seen[s.Key] = true
				if n := s.Name(p.Build); !tagRE.MatchString(n) {
					t.Fatalf("invalid name %q", n)
				}
			}
			if e := p.Export; e != nil {
				if !validKey(e.Key) {
					t.Fatalf("invalid export %q", e.Key)
				}
				if !p.Trusted && (!allow || e.Kind != KindPullRequest) {
					t.Fatalf("untrusted plan exports %+v (allow=%v)", e, allow)
				}
			}
		}
	})
}
