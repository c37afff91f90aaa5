package ghaction

import (
	"fmt"
	"strings"
	"time"
)

// Summary is what the job summary reports for one action run.
type Summary struct {
	Builds   []BuildSummary
	Cache    *CacheSummary // the repository's gha cache after cleanup; nil when not known
	Warnings []string
	// Mounts has one line per Dockerfile cache mount: where it was
	// restored from, and whether it was saved.
	Mounts []string
}

// CacheSummary is the repository's Actions cache as cleanup left it.
type CacheSummary struct {
	Used, Quota int64    // bytes; Quota 0 means unknown
	Mounts      int64    // bytes of Used that are cache mount archives; 0: none or unknown
	Removed     []string // what cleanup removed, one line per mechanism
}

// BuildSummary is one build's cache result. Every figure is one the run
// measured or read back from the store; what it cannot know it leaves out.
type BuildSummary struct {
	Name string
	// DryRun: nothing was built; the summary shows the plan.
	DryRun bool
	// Steps and Cached come from BuildKit's status stream; Duration is the
	// build's wall time.
	Steps, Cached int
	Duration      time.Duration
	// HitScope names the import scope that served the hits, where the
	// backend can tell; empty when it cannot, and Imports then shows what
	// was tried, in order.
	HitScope string
	Imports  []ImportSummary
	Exports  []ExportSummary
	// Transfers are one line per cache scope whose bytes bkcache moved
	// itself (the gha data plane): bytes and time up or down, blobs
	// uploaded or skipped.
	Transfers []string
	// MissReasons say why steps missed the cache, one cause a line, as
	// the comparison with the imported scope's build record found them.
	MissReasons []string
}

// ImportSummary is one cache import, Ref redacted by the caller. Missed:
// the build found nothing there (a scope not exported yet).
type ImportSummary struct {
	Ref    string
	Missed bool
}

// ExportSummary is one cache export: Ref redacted by the caller, Size in
// bytes as the store reports it, or -1 when it cannot tell.
type ExportSummary struct {
	Ref  string
	Size int64
}

// RenderSummary renders s as short Markdown for GITHUB_STEP_SUMMARY. Every
// caller-supplied string is escaped: it cannot break the table, open HTML or
// links, or span lines.
func RenderSummary(s Summary) string {
	sections := []string{"### bkcache"}
	if t := resultsTable(s.Builds); t != "" {
		sections = append(sections, t)
	}
	for _, bs := range s.Builds {
		if bs.DryRun {
			sections = append(sections, fmt.Sprintf("**%s**: dry run, nothing was built. The plan:", orDash(markdownText(bs.Name))))
		} else if len(s.Builds) > 1 && (len(bs.Exports) > 0 || len(bs.Imports) > 0 || len(bs.Transfers) > 0) {
			sections = append(sections, "**"+orDash(markdownText(bs.Name))+"**")
		}
		if len(bs.MissReasons) > 0 {
			var b strings.Builder
			b.WriteString("**Why it missed**\n")
			for _, r := range bs.MissReasons {
				fmt.Fprintf(&b, "\n- %s", markdownText(r))
			}
			sections = append(sections, b.String())
		}
		if len(bs.Imports) > 0 {
			sections = append(sections, importList(bs))
		}
		if len(bs.Transfers) > 0 {
			var b strings.Builder
			b.WriteString("<details><summary>Cache transfers</summary>\n\n")
			for _, t := range bs.Transfers {
				fmt.Fprintf(&b, "- %s\n", markdownText(t))
			}
			b.WriteString("\n</details>")
			sections = append(sections, b.String())
		}
		if len(bs.Exports) > 0 {
			sections = append(sections, exportTable(bs))
		}
	}
	if c := s.Cache; c != nil {
		var b strings.Builder
		fmt.Fprintf(&b, "**Actions cache**: %s used", humanSize(c.Used))
		if c.Quota > 0 {
			fmt.Fprintf(&b, " of %s (%d%%)", humanSize(c.Quota), c.Used*100/c.Quota)
		}
		if c.Mounts > 0 && c.Used > 0 {
			fmt.Fprintf(&b, "; cache mount archives %s (%d%% of used)", humanSize(c.Mounts), min(c.Mounts, c.Used)*100/c.Used)
		}
		for _, r := range c.Removed {
			fmt.Fprintf(&b, "\n- cleanup %s", markdownText(r))
		}
		sections = append(sections, b.String())
	}
	if len(s.Mounts) > 0 {
		var b strings.Builder
		b.WriteString("**Cache mounts**\n")
		for _, m := range s.Mounts {
			fmt.Fprintf(&b, "\n- %s", markdownText(m))
		}
		sections = append(sections, b.String())
	}
	if len(s.Warnings) > 0 {
		var b strings.Builder
		b.WriteString("**Warnings**\n")
		for _, w := range s.Warnings {
			fmt.Fprintf(&b, "\n- :warning: %s", markdownText(w))
		}
		sections = append(sections, b.String())
	}
	return strings.Join(sections, "\n\n") + "\n"
}

// resultsTable has one row per build that ran. The "Served by" column is
// there only when some build knows it.
func resultsTable(builds []BuildSummary) string {
	var ran []BuildSummary
	servedBy := false
	for _, bs := range builds {
		if !bs.DryRun {
			ran = append(ran, bs)
			servedBy = servedBy || bs.HitScope != ""
		}
	}
	if len(ran) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| Build | Cached | Run | Hit ratio | Duration |")
	if servedBy {
		b.WriteString(" Served by |")
	}
	b.WriteString("\n|:--|--:|--:|--:|--:|")
	if servedBy {
		b.WriteString(":--|")
	}
	for _, bs := range ran {
		fmt.Fprintf(&b, "\n| %s | %d / %d | %d | %s | %s |",
			orDash(markdownText(bs.Name)), bs.Cached, bs.Steps, max(bs.Steps-bs.Cached, 0),
			hitRatio(bs.Cached, bs.Steps), duration(bs.Duration))
		if servedBy {
			fmt.Fprintf(&b, " %s |", orDash(markdownText(bs.HitScope)))
		}
	}
	return b.String()
}

func importList(bs BuildSummary) string {
	title := "Imports tried, in order"
	if bs.DryRun {
		title = "Imports, in lookup order"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<details><summary>%s</summary>\n\n", title)
	for _, im := range bs.Imports {
		fmt.Fprintf(&b, "- %s", markdownText(im.Ref))
		if im.Missed {
			b.WriteString(": nothing there yet")
		}
		b.WriteString("\n")
	}
	b.WriteString("\n</details>")
	return b.String()
}

func exportTable(bs BuildSummary) string {
	var b strings.Builder
	if bs.DryRun {
		b.WriteString("| Export (planned) |\n|:--|")
		for _, e := range bs.Exports {
			fmt.Fprintf(&b, "\n| %s |", markdownText(e.Ref))
		}
		return b.String()
	}
	b.WriteString("| Export | Size |\n|:--|--:|")
	for _, e := range bs.Exports {
		fmt.Fprintf(&b, "\n| %s | %s |", markdownText(e.Ref), humanSize(e.Size))
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func hitRatio(cached, steps int) string {
	if steps <= 0 {
		return "–"
	}
	return fmt.Sprintf("%d%%", cached*100/steps)
}

func duration(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return roundDuration(d).String()
}

// roundDuration keeps summaries short: whole seconds, or tenths under 10s.
func roundDuration(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// humanSize is a size for the summary; "–" when the store could not tell.
func humanSize(n int64) string {
	if n < 0 {
		return "–"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
