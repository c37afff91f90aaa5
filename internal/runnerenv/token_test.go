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
		name, token, want string
		err               string // "" when it may be told
	}{
		{"emulator PR token writes the merge ref",
			mint(t, emulator.TokenOptions{Write: "refs/pull/42/merge", Read: []string{"refs/heads/main"}}), "refs/pull/42/merge", ""},
		{"emulator pull_request_target token writes the base branch",
			mint(t, emulator.TokenOptions{Write: "refs/heads/master"}), "refs/heads/master", ""},
		{"read-only token writes nothing",
			mint(t, emulator.TokenOptions{Read: []string{"refs/heads/main"}}), "", ""},
		{"GitHub's shape",
			jwtWith(`{"ac":"[{\"Scope\":\"refs/heads/main\",\"Permission\":1},{\"Scope\":\"refs/pull/7/merge\",\"Permission\":3}]","exp":1}`), "refs/pull/7/merge", ""},
		{"one ref writable twice",
			jwtWith(`{"ac":"[{\"Scope\":\"refs/heads/a\",\"Permission\":3},{\"Scope\":\"refs/heads/a\",\"Permission\":2}]"}`), "refs/heads/a", ""},
		{"several writable refs are ambiguous",
			jwtWith(`{"ac":"[{\"Scope\":\"refs/heads/a\",\"Permission\":3},{\"Scope\":\"refs/heads/b\",\"Permission\":2}]"}`), "", "several refs (refs/heads/a, refs/heads/b)"},
		{"padded payload", strings.Replace(jwtWith(`{"ac":"[{\"Scope\":\"refs/heads/a\",\"Permission\":3}]"}`), ".c2ln", "==.c2ln", 1), "refs/heads/a", ""},
		{"no ac claim fails closed", jwtWith(`{"sub":"x"}`), "", "no readable `ac` claim"},
		{"ac not a string", jwtWith(`{"ac":[{"Scope":"refs/heads/a","Permission":3}]}`), "", "no readable `ac` claim"},
		{"ac not JSON", jwtWith(`{"ac":"nope"}`), "", "no readable `ac` claim"},
		{"not a JWT", "ghs_opaque", "", "no readable `ac` claim"},
		{"bad base64", "a.!!!.c", "", "no readable `ac` claim"},
		{"empty", "", "", "no readable `ac` claim"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := WritableRef(tt.token)
			if got != tt.want {
				t.Errorf("WritableRef = %q, want %q", got, tt.want)
			}
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("error %v, want it to contain %q", err, tt.err)
			case err != nil && tt.token != "" && strings.Contains(err.Error(), tt.token):
				t.Errorf("error %q shows the token", err)
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
// from the claim, and an unreadable claim writes nothing. Seeds: testdata/fuzz/FuzzTokenScopes.
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
		w, err := WritableRef(token)
		if !ok && (w != "" || err == nil) {
			t.Fatalf("unreadable token: WritableRef = %q, %v; want nothing and an error", w, err)
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
