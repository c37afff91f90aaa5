package buildjob

import (
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache"
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

// TestExpiryWarning: a warning once the default branch's cache has gone
// unread for 6 of GitHub's 7 days, never before, never when unknown.
func TestExpiryWarning(t *testing.T) {
	now := time.Date(2026, 12, 28, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		lastRead time.Time
		want     string // "" means no warning
	}{
		{name: "read an hour ago", lastRead: now.Add(-time.Hour)},
		{name: "read just under 6 days ago", lastRead: now.Add(-6*24*time.Hour + time.Minute)},
		{name: "read 6 days ago", lastRead: now.Add(-6 * 24 * time.Hour), want: "for 6 days"},
		{name: "unknown", lastRead: time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := expiryWarning(tt.lastRead, now)
			if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("expiryWarning = %q, want %q", got, tt.want)
			}
			if got != "" && !strings.Contains(got, "on: schedule") {
				t.Errorf("the warning names no fix: %q", got)
			}
		})
	}
}

// TestCleanupLines: a line per mechanism that ran; the mounts' only when
// it deleted something, with what it freed.
func TestCleanupLines(t *testing.T) {
	const mounts = "superseded cache mount archives and build records"
	tests := []struct {
		name      string
		o         ghacache.ExportCleanup
		r         ghacache.CleanupReport
		want, not []string
	}{
		{name: "index only", o: ghacache.ExportCleanup{Ref: "refs/heads/main", Scope: "app"}, r: ghacache.CleanupReport{Superseded: 2},
			want: []string{"deleted 2 superseded index entries of scope app"}, not: []string{mounts, "swept"}},
		{name: "mounts pruned", o: ghacache.ExportCleanup{Ref: "refs/heads/main", Scope: "app", Sweep: true}, r: ghacache.CleanupReport{Mounts: 3, MountsBytes: 3 << 20},
			want: []string{"deleted 3 " + mounts, "(3.0 MiB)", "swept 0"}},
		{name: "merge queue says only what it deleted", o: ghacache.ExportCleanup{Ref: "refs/heads/gh-readonly-queue/main/x", Transient: true}, r: ghacache.CleanupReport{Transient: 5, Mounts: 1},
			want: []string{"deleted 5 cache entries"}, not: []string{mounts}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(cleanupLines(tt.o, tt.r), "\n")
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("cleanupLines =\n%s\nwant it to say %q", got, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("cleanupLines =\n%s\nshould not say %q", got, n)
				}
			}
		})
	}
}
