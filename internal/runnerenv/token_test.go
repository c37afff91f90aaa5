package runnerenv

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
)

// jwtWith builds an unsigned JWT-shaped token whose payload is claims.
func jwtWith(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + ".c2lnbmF0dXJl"
}

func mint(t *testing.T, o emulator.TokenOptions) string {
	t.Helper()
	o.Repo = "o/r"
	o.Now = time.Unix(1_700_000_000, 0)
	tok, err := emulator.MintToken([]byte("secret"), o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestWritableRef(t *testing.T) {
	for _, tt := range []struct {
		name, token, fallback, want string
	}{
		{"emulator PR token writes the merge ref",
			mint(t, emulator.TokenOptions{Write: "refs/pull/42/merge", Read: []string{"refs/heads/main"}}), "refs/heads/x", "refs/pull/42/merge"},
		{"emulator pull_request_target token writes the base branch",
			mint(t, emulator.TokenOptions{Write: "refs/heads/master"}), "", "refs/heads/master"},
		{"read-only token writes nothing",
			mint(t, emulator.TokenOptions{Read: []string{"refs/heads/main"}}), "refs/heads/main", ""},
		{"GitHub's shape",
			jwtWith(`{"ac":"[{\"Scope\":\"refs/heads/main\",\"Permission\":1},{\"Scope\":\"refs/pull/7/merge\",\"Permission\":3}]","exp":1}`), "", "refs/pull/7/merge"},
		{"last writable scope wins, as in BuildKit",
			jwtWith(`{"ac":"[{\"Scope\":\"refs/heads/a\",\"Permission\":3},{\"Scope\":\"refs/heads/b\",\"Permission\":2}]"}`), "", "refs/heads/b"},
		{"padded payload", strings.Replace(jwtWith(`{"ac":"[{\"Scope\":\"refs/heads/a\",\"Permission\":3}]"}`), ".c2ln", "==.c2ln", 1), "", "refs/heads/a"},
		{"no ac claim falls back to GITHUB_REF", jwtWith(`{"sub":"x"}`), "refs/heads/dev", "refs/heads/dev"},
		{"ac not a string", jwtWith(`{"ac":[{"Scope":"refs/heads/a","Permission":3}]}`), "refs/heads/dev", "refs/heads/dev"},
		{"ac not JSON", jwtWith(`{"ac":"nope"}`), "refs/heads/dev", "refs/heads/dev"},
		{"not a JWT", "ghs_opaque", "refs/heads/dev", "refs/heads/dev"},
		{"bad base64", "a.!!!.c", "refs/heads/dev", "refs/heads/dev"},
		{"empty", "", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := WritableRef(tt.token, tt.fallback); got != tt.want {
				t.Errorf("WritableRef = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTokenScopes(t *testing.T) {
	tok := mint(t, emulator.TokenOptions{Write: "refs/pull/1/merge", Read: []string{"refs/heads/dev", "refs/heads/main"}})
	got, ok := TokenScopes(tok)
	want := []CacheScope{{"refs/pull/1/merge", true}, {"refs/heads/dev", false}, {"refs/heads/main", false}}
	if !ok || len(got) != len(want) {
		t.Fatalf("TokenScopes = %v, %v; want %v", got, ok, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("scope %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// FuzzTokenScopes: any input, no panic; a writable ref only ever comes
// from the claim or the fallback. Seeds: testdata/fuzz/FuzzTokenScopes.
func FuzzTokenScopes(f *testing.F) {
	f.Add(jwtWith(`{"ac":"[{\"Scope\":\"refs/heads/main\",\"Permission\":3}]"}`))
	f.Add(jwtWith(`{"ac":"[{\"Scope\":\"refs/pull/1/merge\",\"Permission\":2},{\"Scope\":\"refs/heads/main\",\"Permission\":1}]"}`))
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		scopes, ok := TokenScopes(token)
		if !ok && len(scopes) != 0 {
			t.Fatalf("scopes %v without ok", scopes)
		}
		const fallback = "refs/heads/fallback"
		w := WritableRef(token, fallback)
		if !ok && w != fallback {
			t.Fatalf("unreadable token: WritableRef = %q, want the fallback", w)
		}
		if ok && w != "" {
			found := false
			for _, s := range scopes {
				found = found || (s.Write && s.Ref == w)
			}
			if !found {
				t.Fatalf("WritableRef %q is not a writable scope of %v", w, scopes)
			}
		}
	})
}
