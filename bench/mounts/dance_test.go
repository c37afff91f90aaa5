package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSpliceResults: -dance rewrites only its section of the report, the
// other measurements only theirs.
func TestSpliceResults(t *testing.T) {
	const main1, main2 = "\nmain one\n", "\nmain two\n"
	const dance1, dance2 = "\n" + danceHeading + "\n\ndance one\n", "\n" + danceHeading + "\n\ndance two\n"
	for _, tt := range []struct {
		name, old, md string
		dance         bool
		want          string
	}{
		{"dance into none", "", dance1, true, "\n" + dance1},
		{"dance after main", main1, dance1, true, main1 + dance1},
		{"dance replaces dance", main1 + dance1, dance2, true, main1 + dance2},
		{"main keeps dance", main1 + dance1, main2, false, main2 + dance1},
		{"main into none", "", main1, false, main1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "results.md")
			if tt.old != "" {
				if err := os.WriteFile(file, []byte(tt.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := spliceResults(file, tt.md, tt.dance); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(file)
			if err != nil || string(got) != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
