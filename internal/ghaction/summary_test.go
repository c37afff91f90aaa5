package ghaction

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func TestRenderSummaryGolden(t *testing.T) {
	tests := map[string]Summary{
		"warm": {Builds: []BuildSummary{{
			Name: "app", Steps: 12, Cached: 9,
			Duration: 42*time.Second + 300*time.Millisecond, CachedDuration: 83*time.Second + 400*time.Millisecond,
			HitScope: "main (default branch)",
			Imports:  []string{"type=gha,scope=buildkit-pr-42", "type=gha,scope=buildkit-main"},
			Exports:  []ExportSummary{{Ref: "type=gha,mode=max,scope=buildkit-pr-42", Size: 23_456_789}},
		}}},
		"cold": {Builds: []BuildSummary{{
			Name: "buildkit", Steps: 5, Duration: 3 * time.Minute,
			Exports: []ExportSummary{{Ref: "type=registry,ref=ghcr.io/o/app-cache:main", Size: -1}},
		}}},
		"multi": {
			Builds: []BuildSummary{
				{Name: "linux-amd64", Steps: 8, Cached: 8, CachedDuration: 2500 * time.Millisecond, HitScope: "main (default branch)",
					Exports: []ExportSummary{{Ref: "type=s3,bucket=b,name=buildkit-main,secret_access_key=***", Size: 512}}},
				{Name: "linux-arm64", Steps: 8, Cached: 3, HitScope: "feature-a (this branch)"},
			},
			Warnings: []string{"cache export to type=gha failed: 429 Too Many Requests; build kept going (ignore-error=true)"},
		},
		"dry-run": {Warnings: []string{"dry run: nothing was built"}},
		"hostile": {
			Builds: []BuildSummary{{
				Name: "x | y <script>alert(1)</script>", Steps: 1, Cached: 1,
				HitScope: "pr\n::set-output name=pwned::1\n| forged | row |",
				Exports:  []ExportSummary{{Ref: "type=local,dest=`rm -rf`/[link](javascript:x)*bold*_em_", Size: 0}},
			}},
			Warnings: []string{"<img src=x onerror=alert(1)>\n## heading\n- item"},
		},
	}
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			got := RenderSummary(s)
			path := filepath.Join("testdata", "summary-"+name+".md")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create)", err)
			}
			if got != string(want) {
				t.Errorf("RenderSummary mismatch with %s:\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

// Hostile strings stay inside their cell: the table keeps its shape and no
// raw HTML or line break gets through.
func TestRenderSummaryEscapes(t *testing.T) {
	s := Summary{Builds: []BuildSummary{{
		Name: "a|b\n| c | d |", HitScope: "<b>x</b>`y`", Steps: 2, Cached: 1,
		Exports: []ExportSummary{{Ref: "r|e\nf", Size: 1}},
	}}}
	md := RenderSummary(s)
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		// 7 columns in the builds table, 2 in the exports table.
		if borders := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|"); borders != 8 && borders != 3 {
			t.Errorf("row %q has %d cell borders", line, borders)
		}
	}
	if strings.Contains(md, "<b>") || strings.Contains(md, "`y`") {
		t.Errorf("markup leaked:\n%s", md)
	}
}

func TestHumanSize(t *testing.T) {
	tests := map[int64]string{-1: "unknown", 0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 23_456_789: "22.4 MiB", 5 << 30: "5.0 GiB"}
	for in, want := range tests {
		if got := humanSize(in); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", in, got, want)
		}
	}
}

// FuzzRenderSummary: any strings keep the tables' shape and raw HTML out.
func FuzzRenderSummary(f *testing.F) {
	f.Add("app", "main (default branch)", "type=gha,scope=x", "warn")
	f.Add("a|b\n|c|", "<b>", "`x`|\\|", "\r\n::error::x")
	f.Fuzz(func(t *testing.T, name, scope, ref, warning string) {
		md := RenderSummary(Summary{
			Builds:   []BuildSummary{{Name: name, HitScope: scope, Steps: 3, Cached: 1, Exports: []ExportSummary{{Ref: ref, Size: 10}}}},
			Warnings: []string{warning},
		})
		if strings.Contains(md, "<") && !strings.Contains(md, "<details>") {
			t.Fatalf("raw < in\n%s", md)
		}
		var rows int
		for _, line := range strings.Split(md, "\n") {
			if !strings.HasPrefix(line, "|") {
				continue
			}
			rows++
			// Remove escaped backslashes first, then escaped pipes.
			plain := strings.ReplaceAll(strings.ReplaceAll(line, `\\`, ""), `\|`, "")
			if borders := strings.Count(plain, "|"); borders != 8 && borders != 3 {
				t.Fatalf("row %q has %d cell borders", line, borders)
			}
		}
		if rows != 6 {
			t.Fatalf("%d table rows, want 6:\n%s", rows, md)
		}
	})
}

func TestRenderSummaryMounts(t *testing.T) {
	md := RenderSummary(Summary{Mounts: []string{"gomod: restored from local x (1.0 MiB, 0.2s); saved", "evil\n- <b>line</b>"}})
	if !strings.Contains(md, "**Cache mounts**\n\n- gomod: restored from local x (1.0 MiB, 0.2s); saved\n") {
		t.Errorf("mount line missing:\n%s", md)
	}
	if strings.Contains(md, "\n- <b>") || strings.Contains(md, "<b>") {
		t.Errorf("a mount line broke out of its item:\n%s", md)
	}
}
