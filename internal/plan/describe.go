package plan

import (
	"fmt"
	"strings"

	"github.com/bkcache/bkcache/internal/cacheentry"
)

// Describe renders the plan for the log: the scopes with why each is
// there and the scope notes, then the redacted cache-from and cache-to
// entries. The plan's own Notes are left to the caller.
func (p Plan) Describe() string {
	var b strings.Builder
	b.WriteString(p.DescribeScopes())
	writeEntries(&b, "cache-from", p.Imports)
	writeEntries(&b, "cache-to", p.Exports)
	if len(p.Dropped) > 0 {
		b.WriteString("left out:\n")
		for _, d := range p.Dropped {
			fmt.Fprintf(&b, "  %s\n", d)
		}
	}
	return b.String()
}

// DescribeScopes is the first part of Describe: the scopes and why each is
// there, without the cache entries (for where those are printed anyway).
func (p Plan) DescribeScopes() string {
	var b strings.Builder
	trust := "trusted"
	if !p.Scope.Trusted {
		trust = "untrusted"
	}
	fmt.Fprintf(&b, "build %q (%s)\n", p.Scope.Build, trust)
	if e := p.Scope.Export; e != nil {
		fmt.Fprintf(&b, "  export scope %s (%s)\n", e.Name(p.Scope.Build), e.Reason)
	} else {
		b.WriteString("  export scope: none (read-only)\n")
	}
	for _, s := range p.Scope.Imports {
		fmt.Fprintf(&b, "  import scope %s (%s)\n", s.Name(p.Scope.Build), s.Reason)
	}
	for _, n := range p.Scope.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

func writeEntries(b *strings.Builder, title string, es []cacheentry.Entry) {
	if len(es) == 0 {
		fmt.Fprintf(b, "%s: none\n", title)
		return
	}
	fmt.Fprintf(b, "%s:\n", title)
	for _, e := range es {
		fmt.Fprintf(b, "  %s\n", Display(e))
	}
}

// CacheFrom is the cache-from output: one redacted buildx line per import.
func (p Plan) CacheFrom() string { return joinRedacted(p.Imports) }

// CacheTo is the cache-to output: one redacted buildx line per export.
func (p Plan) CacheTo() string { return joinRedacted(p.Exports) }

func joinRedacted(es []cacheentry.Entry) string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = Display(e)
	}
	return strings.Join(lines, "\n")
}
