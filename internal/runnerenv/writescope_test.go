package runnerenv

import "testing"

func TestEmptyWriteScope(t *testing.T) {
	for _, tt := range []struct {
		name, token string
		want        bool
	}{
		{"writable ref", jwtWith(`{"ac":"[{\"Scope\":\"refs/heads/a\",\"Permission\":3}]"}`), false},
		{"empty writable scope", jwtWith(`{"ac":"[{\"Scope\":\"\",\"Permission\":3}]"}`), true},
		{"empty write-only scope after a ref", jwtWith(`{"ac":"[{\"Scope\":\"refs/heads/a\",\"Permission\":1},{\"Scope\":\"\",\"Permission\":2}]"}`), true},
		{"empty read-only scope", jwtWith(`{"ac":"[{\"Scope\":\"\",\"Permission\":1}]"}`), false},
		{"no scopes", jwtWith(`{"ac":"[]"}`), false},
		{"not a JWT", "ghs_opaque", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := EmptyWriteScope(tt.token); got != tt.want {
				t.Errorf("EmptyWriteScope = %v, want %v", got, tt.want)
			}
		})
	}
}
