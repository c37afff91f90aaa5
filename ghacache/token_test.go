package ghacache

import (
	"strings"
	"testing"

	"github.com/bkcache/bkcache/ghacache/emulator"
)

func TestTokenScopes(t *testing.T) {
	emu, err := emulator.New(emulator.Config{Secret: []byte("test-secret-0123456789"), Blobs: emulator.NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		opts  emulator.TokenOptions
		want  []TokenScope
		isErr bool
	}{
		{"push", emulator.TokenOptions{Repo: "o/r", Write: "refs/heads/main"}, []TokenScope{{"refs/heads/main", true}}, false},
		{"pull request", emulator.TokenOptions{Repo: "o/r", Write: "refs/pull/1/merge", Read: []string{"refs/heads/dev", "refs/heads/main"}},
			[]TokenScope{{"refs/pull/1/merge", true}, {"refs/heads/dev", false}, {"refs/heads/main", false}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := emu.Token(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := TokenScopes(tok)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("TokenScopes = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("scope %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
	for _, bad := range []string{"", "not.a.jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig"} {
		if _, err := TokenScopes(bad); err == nil {
			t.Errorf("TokenScopes(%q) accepted a token without scopes", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("the error quotes the token: %v", err)
		}
	}
}

func FuzzTokenScopes(f *testing.F) {
	for _, s := range []string{"", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.eyJhYyI6Ilt7XCJTY29wZVwiOlwicmVmcy9oZWFkcy9tYWluXCIsXCJQZXJtaXNzaW9uXCI6M31dIn0.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scopes, err := TokenScopes(s)
		if err == nil {
			for _, sc := range scopes {
				_ = IndexKey("buildkit", sc.Ref)
			}
		}
	})
}
