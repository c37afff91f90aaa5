package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseSecrets(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   map[string]string
		want []Secret
	}{
		{"KEY=VALUE as build-push-action", map[string]string{"secrets": "GIT_AUTH_TOKEN=abc123\nNPM=x=y,z"},
			[]Secret{{ID: "GIT_AUTH_TOKEN", Value: "abc123"}, {ID: "NPM", Value: "x=y,z"}}},
		{"quoted multi-line value", map[string]string{"secrets": "\"GPG_KEY=-----BEGIN-----\nline2\n-----END-----\"\nB=2"},
			[]Secret{{ID: "GPG_KEY", Value: "-----BEGIN-----\nline2\n-----END-----"}, {ID: "B", Value: "2"}}},
		{"quoted value with a comma", map[string]string{"secrets": `"A=x,y"`}, []Secret{{ID: "A", Value: "x,y"}}},
		{"buildx forms", map[string]string{"secrets": "id=a,src=/x\nid=b,env=VAR\ntype=env,id=c,src=VAR2\nid=d,source=/y"},
			[]Secret{{ID: "a", File: "/x"}, {ID: "b", Env: "VAR"}, {ID: "c", Env: "VAR2"}, {ID: "d", File: "/y"}}},
		{"id alone is a KEY=VALUE named id", map[string]string{"secrets": "id=foo"}, []Secret{{ID: "id", Value: "foo"}}},
		{"comments and blank lines", map[string]string{"secrets": "# token\n\nA=1\n"}, []Secret{{ID: "A", Value: "1"}}},
		{"secret-files", map[string]string{"secret-files": "CERT=/tmp/a,b.pem\nKEY= ./k "}, []Secret{{ID: "CERT", File: "/tmp/a,b.pem"}, {ID: "KEY", File: "./k"}}},
		{"secret-envs with commas", map[string]string{"secret-envs": "A=ENV_A,B=ENV_B\nC=ENV_C"}, []Secret{{ID: "A", Env: "ENV_A"}, {ID: "B", Env: "ENV_B"}, {ID: "C", Env: "ENV_C"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(inputs(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Secrets, tt.want) {
				t.Errorf("got  %#v\nwant %#v", c.Secrets, tt.want)
			}
		})
	}
}

func TestParseSecretsErrors(t *testing.T) {
	const value = "s3cr3t-VALUE-never-shown"
	for _, tt := range []struct {
		name string
		in   map[string]string
		want string
	}{
		{"no =", map[string]string{"secrets": "A=1\n" + value}, `input "secrets" line 2: want KEY=VALUE, id=NAME,src=PATH or id=NAME,env=VAR; the line has no '='`},
		{"empty key", map[string]string{"secrets": "=" + value}, `input "secrets" line 1: want KEY=VALUE`},
		{"empty value", map[string]string{"secrets": "\n\nTOKEN="}, `input "secrets" line 3: key "TOKEN": the value is empty`},
		{"duplicate", map[string]string{"secrets": "A=" + value, "secret-envs": "A=VAR"}, `input "secret-envs" line 1: key "A" is already given at input "secrets" line 1`},
		{"buildx form without a source", map[string]string{"secrets": "id=a,type=file"}, `input "secrets" line 1: id=NAME,src=PATH form: key "a": missing src or env`},
		{"buildx form with two sources", map[string]string{"secrets": "id=a,src=/x,env=Y"}, `src and env are exclusive`},
		{"buildx form without id", map[string]string{"secrets": "src=/x,env=Y"}, `missing id`},
		{"bad file line", map[string]string{"secret-files": "A=/x\nB"}, `input "secret-files" line 2: want KEY=PATH`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(inputs(tt.in))
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), value) || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error shows the secret value: %q", err)
			}
		})
	}
}

func TestSecretInputValues(t *testing.T) {
	get := inputs(map[string]string{"secrets": "A=one\nid=b,src=/path\n\"M=l1\nl2\"\nbare-secret"})
	got := SecretInputValues(get)
	want := []string{"one", "b,src=/path", "b", "/path", "l1\nl2", "bare-secret"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SecretInputValues = %q, want %q", got, want)
	}
	if got := SecretInputValues(inputs(map[string]string{"secrets": "\"A=open\nB=2"})); !reflect.DeepEqual(got, []string{"open\nB=2"}) {
		t.Errorf("an unterminated quote runs to the end, as csv-parse's relaxed quotes do: %q", got)
	}
	c, err := Parse(inputs(map[string]string{"secrets": "A=one", "github-token": "ghs_x"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.SecretValues(); !reflect.DeepEqual(got, []string{"ghs_x", "one"}) {
		t.Errorf("SecretValues = %q", got)
	}
	if s := fmt.Sprintf("%v %+v %#v", c.Secrets[0], c.Secrets[0], c.Secrets[0]); strings.Contains(s, "one") {
		t.Errorf("formatting a Secret shows its value: %s", s)
	}
}

// TestSecretInFieldsThatLookLikeBuildx: build-push-action's KEY=VALUE
// whose every field looks like a buildx key is read as buildx syntax; the
// value it may have been meant as is masked whole and piece by piece,
// since bkcache's messages name the id or the path on their own. The
// values here are nothing the runner masks by itself.
func TestSecretInFieldsThatLookLikeBuildx(t *testing.T) {
	for _, tt := range []struct {
		name, item string
		want       []string
	}{
		{"src", "id=deploy,src=Hunter2-unmasked-value", []string{"deploy,src=Hunter2-unmasked-value", "deploy", "Hunter2-unmasked-value"}},
		{"env", "env=Pr0d-S3cret,id=npm", []string{"Pr0d-S3cret,id=npm", "Pr0d-S3cret", "npm"}},
		{"a buildx error names the id", "id=T0ken-as-id,type=file", []string{"T0ken-as-id,type=file", "T0ken-as-id"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := SecretInputValues(inputs(map[string]string{"secrets": tt.item}))
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("SecretInputValues(%q) = %q, lacks %q", tt.item, got, w)
				}
			}
			if slices.Contains(got, "file") {
				t.Errorf("masks the type %q, which is no secret", got)
			}
		})
	}
}

// FuzzParseSecrets: any secrets input parses or fails with an error that
// names the input and never contains a value; every parsed value is in
// what SecretInputValues masks. Seeds: testdata/fuzz/FuzzParseSecrets.
func FuzzParseSecrets(f *testing.F) {
	f.Add("A=1\nid=b,src=/x")
	f.Add("\"K=a\nb\"")
	f.Add("=x")
	f.Add("id=a,env=B,type=env")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(inputs(map[string]string{"secrets": in}))
		masked := SecretInputValues(inputs(map[string]string{"secrets": in}))
		if err != nil {
			if !strings.Contains(err.Error(), `input "secrets"`) {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		for _, s := range c.Secrets {
			if s.ID == "" {
				t.Fatalf("secret without id: %#v", s)
			}
			if n := btoi(s.Value != "") + btoi(s.File != "") + btoi(s.Env != ""); n != 1 {
				t.Fatalf("secret %q has %d sources", s.ID, n)
			}
			if s.Value != "" && !contains(masked, s.Value) {
				t.Fatalf("value of %q is not masked", s.ID)
			}
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
