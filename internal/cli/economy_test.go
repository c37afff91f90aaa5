package cli

import (
	"strings"
	"testing"
)

// TestDefaultBranchState: the default branch's cache as cleanup finds it,
// and the fix each state names.
func TestDefaultBranchState(t *testing.T) {
	tests := []struct {
		name           string
		missing, total int
		found          bool
		want           []string // "" means no message
	}{
		{name: "whole", missing: 0, total: 8, found: true, want: nil},
		{name: "evicted blobs", missing: 3, total: 8, found: true, want: []string{"incomplete: 3 of the 8", "next build exports them again"}},
		{name: "no index", found: false, want: []string{"no cache index", "7 days", "on: schedule"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := defaultBranchState(tt.missing, tt.total, tt.found)
			if (got == "") != (tt.want == nil) {
				t.Fatalf("defaultBranchState = %q", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("defaultBranchState = %q, want it to say %q", got, w)
				}
			}
		})
	}
}
