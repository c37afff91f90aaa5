package contentstore

import "testing"

// TestRefName: a log line never has a gap where an empty ref was.
func TestRefName(t *testing.T) {
	for _, tc := range []struct{ ref, want string }{
		{"refs/heads/main", "refs/heads/main"},
		{"", `the empty ref ""`},
	} {
		if got := refName(tc.ref); got != tc.want {
			t.Errorf("refName(%q) = %q, want %q", tc.ref, got, tc.want)
		}
	}
}
