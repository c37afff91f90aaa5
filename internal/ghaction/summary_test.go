package ghaction

import (
	"strings"
	"testing"
	"time"
)

// The job summaries of real runs are golden files of the end-to-end test
// (e2e/ghaaction, TestSummaryGolden). These tests cover the rendering rules
// that no real run is needed for.

func TestRenderSummary(t *testing.T) {
	ran := BuildSummary{
		Name: "buildkit", Steps: 3, Cached: 2, Duration: 4321 * time.Millisecond,
		Imports: []ImportSummary{{Ref: "type=local,src=/c/buildkit_pr-1", Missed: true}, {Ref: "type=local,src=/c/buildkit_main"}},
		Exports: []ExportSummary{{Ref: "type=local,dest=/c/buildkit_pr-1", Size: 2048}, {Ref: "type=gha,scope=buildkit", Size: -1}},
	}
	for _, tc := range []struct {
		name      string
		s         Summary
		want, not []string
	}{
		{
			name: "build",
			s:    Summary{Builds: []BuildSummary{ran}},
			want: []string{
				"| Build | Cached | Run | Hit ratio | Duration |\n",
				"| buildkit | 2 / 3 | 1 | 66% | 4.3s |",
				"<summary>Imports tried, in order</summary>",
				"- type=local,src=/c/buildkit\\_pr-1: nothing there yet\n- type=local,src=/c/buildkit\\_main\n",
				"| type=local,dest=/c/buildkit\\_pr-1 | 2.0 KiB |",
				"| type=gha,scope=buildkit | – |",
			},
			not: []string{"Served by", "saved", "Why it missed"},
		},
		{
			name: "actions cache after cleanup",
			s: Summary{Cache: &CacheSummary{Used: 3_500_000_000, Quota: 10 << 30, Removed: []string{
				"swept 4 layer blobs of refs/heads/main (96.0 MiB)",
			}}},
			want: []string{"**Actions cache**: 3.3 GiB used of 10.0 GiB (32%)", "- cleanup swept 4 layer blobs of refs/heads/main (96.0 MiB)"},
			not:  []string{"cache mount archives"},
		},
		{
			name: "mount archives' share, when known",
			s:    Summary{Cache: &CacheSummary{Used: 4 << 30, Quota: 10 << 30, Mounts: 1 << 30}},
			want: []string{"**Actions cache**: 4.0 GiB used of 10.0 GiB (40%); cache mount archives 1.0 GiB (25% of used)"},
		},
		{
			name: "served by, where known",
			s:    Summary{Builds: []BuildSummary{func() BuildSummary { b := ran; b.HitScope = "main (default branch)"; return b }()}},
			want: []string{"| Duration | Served by |", "| 4.3s | main (default branch) |"},
		},
		{
			name: "why it missed",
			s: Summary{Builds: []BuildSummary{func() BuildSummary {
				b := ran
				b.MissReasons = []string{"COPY . .: context file changed main.go", "evil\n- <b>x</b>"}
				return b
			}()}},
			want: []string{"**Why it missed**\n\n- COPY . .: context file changed main.go\n- evil"},
			not:  []string{"<b>", "\n- <b>"},
		},
		{
			name: "dry run shows the plan, no results row",
			s:    Summary{Builds: []BuildSummary{{Name: "buildkit", DryRun: true, Imports: ran.Imports[1:], Exports: ran.Exports[:1]}}},
			want: []string{
				"**buildkit**: dry run, nothing was built. The plan:",
				"<summary>Imports, in lookup order</summary>",
				"| Export (planned) |\n|:--|\n| type=local,dest=/c/buildkit\\_pr-1 |",
			},
			not: []string{"| Build |", "Size", "nothing there yet"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := RenderSummary(tc.s)
			for _, w := range tc.want {
				if !strings.Contains(md, w) {
					t.Errorf("summary lacks %q:\n%s", w, md)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(md, n) {
					t.Errorf("summary has %q:\n%s", n, md)
				}
			}
		})
	}
}

// Hostile strings stay inside their cell: the table keeps its shape and no
// raw HTML or line break gets through.
func TestRenderSummaryEscapes(t *testing.T) {
	s := Summary{
		Builds: []BuildSummary{{
			Name: "a|b\n| c | d |", HitScope: "<b>x</b>`y`", Steps: 2, Cached: 1,
			Imports: []ImportSummary{{Ref: "<img src=x onerror=alert(1)>\n## heading"}},
			Exports: []ExportSummary{{Ref: "r|e\nf::set-output name=x::1", Size: 1}},
		}},
		Warnings: []string{"[link](javascript:x)\n- item"},
	}
	md := RenderSummary(s)
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "::") {
			t.Errorf("a line starts a workflow command: %q", line)
		}
		if !strings.HasPrefix(line, "|") {
			continue
		}
		// 6 columns in the builds table, 2 in the exports table.
		if borders := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|"); borders != 7 && borders != 3 {
			t.Errorf("row %q has %d cell borders", line, borders)
		}
	}
	for _, leak := range []string{"<b>", "`y`", "<img", "\n## heading", "[link](javascript"} {
		if strings.Contains(md, leak) {
			t.Errorf("markup %q leaked:\n%s", leak, md)
		}
	}
}

func TestHumanSize(t *testing.T) {
	tests := map[int64]string{-1: "–", 0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 23_456_789: "22.4 MiB", 5 << 30: "5.0 GiB"}
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
	f.Add("app", "", "type=local,dest=/c", "")
	f.Fuzz(func(t *testing.T, name, scope, ref, warning string) {
		md := RenderSummary(Summary{
			Builds: []BuildSummary{{
				Name: name, HitScope: scope, Steps: 3, Cached: 1,
				Imports: []ImportSummary{{Ref: ref, Missed: true}},
				Exports: []ExportSummary{{Ref: ref, Size: 10}},
			}},
			Warnings: []string{warning},
		})
		if strings.Contains(strings.NewReplacer("<details>", "", "</details>", "", "<summary>", "", "</summary>", "").Replace(md), "<") {
			t.Fatalf("raw < in\n%s", md)
		}
		want := 6 // results: 5 columns, 6 borders
		if scope != "" {
			want = 7
		}
		var rows int
		for _, line := range strings.Split(md, "\n") {
			if !strings.HasPrefix(line, "|") {
				continue
			}
			rows++
			// Remove escaped backslashes first, then escaped pipes.
			plain := strings.ReplaceAll(strings.ReplaceAll(line, `\\`, ""), `\|`, "")
			if borders := strings.Count(plain, "|"); borders != want && borders != 3 {
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
