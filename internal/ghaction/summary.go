package ghaction

import (
	"fmt"
	"strings"
	"time"
)

// Summary is what the job summary reports for one action run.
type Summary struct {
	Builds   []BuildSummary
	Warnings []string
	// Mounts has one line per Dockerfile cache mount: where it was
	// restored from, and whether it was saved.
	Mounts []string
}

// BuildSummary is one build's cache result.
type BuildSummary struct {
	Name          string
	Steps, Cached int
	// Duration is the build's wall time; CachedDuration the recorded run
	// time of the steps that were cached this time, where known: the
	// estimate of time saved. Zero means unknown.
	Duration, CachedDuration time.Duration
	// HitScope names the import scope that served the hits, e.g.
	// "main (default branch)"; empty when nothing hit or unknown.
	HitScope string
	Exports  []ExportSummary
	Imports  []string // redacted import entries, in lookup order
}

// ExportSummary is one cache export: Ref redacted by the caller, Size in
// bytes or -1 when unknown.
type ExportSummary struct {
	Ref  string
	Size int64
}

// RenderSummary renders s as short Markdown for GITHUB_STEP_SUMMARY. Every
// caller-supplied string is escaped: it cannot break the table, open HTML or
// links, or span lines.
func RenderSummary(s Summary) string {
	sections := []string{"### bkcache"}
	if len(s.Builds) > 0 {
		var b strings.Builder
		b.WriteString("| Build | Cached | Run | Hit ratio | Duration | Time saved | Served by |\n")
		b.WriteString("|:--|--:|--:|--:|--:|--:|:--|")
		for _, bs := range s.Builds {
			fmt.Fprintf(&b, "\n| %s | %d / %d | %d | %s | %s | %s | %s |",
				orDash(markdownText(bs.Name)), bs.Cached, bs.Steps, max(bs.Steps-bs.Cached, 0),
				hitRatio(bs.Cached, bs.Steps), duration(bs.Duration), timeSaved(bs), orDash(markdownText(bs.HitScope)))
		}
		sections = append(sections, b.String())
	}
	for _, bs := range s.Builds {
		if len(bs.Exports) == 0 && len(bs.Imports) == 0 {
			continue
		}
		if len(s.Builds) > 1 {
			sections = append(sections, "**"+orDash(markdownText(bs.Name))+"**")
		}
		if len(bs.Imports) > 0 {
			var b strings.Builder
			b.WriteString("<details><summary>Imports (in lookup order)</summary>\n\n")
			for _, ref := range bs.Imports {
				fmt.Fprintf(&b, "- %s\n", markdownText(ref))
			}
			b.WriteString("\n</details>")
			sections = append(sections, b.String())
		}
		if len(bs.Exports) > 0 {
			var b strings.Builder
			b.WriteString("| Export | Size |\n|:--|--:|")
			for _, e := range bs.Exports {
				fmt.Fprintf(&b, "\n| %s | %s |", markdownText(e.Ref), humanSize(e.Size))
			}
			sections = append(sections, b.String())
		}
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

func timeSaved(bs BuildSummary) string {
	if bs.CachedDuration <= 0 {
		if bs.Cached == 0 {
			return "0s"
		}
		return "unknown"
	}
	return "~" + roundDuration(bs.CachedDuration).String()
}

// roundDuration keeps summaries short: whole seconds, or tenths under 10s.
func roundDuration(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

func humanSize(n int64) string {
	if n < 0 {
		return "unknown"
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
