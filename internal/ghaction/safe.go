package ghaction

import (
	"strings"
	"unicode"
)

// SafeLine makes s safe to print as one plain log line: carriage returns and
// newlines become the visible escapes `\r` and `\n`, a leading "::" (the
// runner trims leading whitespace first) gets a backslash, and the legacy
// command prefix "##[" (recognised anywhere in a line) is broken up.
func SafeLine(s string) string {
	s = strings.NewReplacer("\r", `\r`, "\n", `\n`, "##[", `#\#[`).Replace(s)
	trimmed := strings.TrimLeftFunc(s, unicode.IsSpace) // like C# TrimStart()
	if strings.HasPrefix(trimmed, "::") {
		s = s[:len(s)-len(trimmed)] + `\` + trimmed
	}
	return s
}

// markdownText escapes s for a Markdown table cell or list item: it is one
// line (SafeLine), and cannot close the cell, open HTML, a code span, a link
// or emphasis.
func markdownText(s string) string {
	return strings.NewReplacer(
		"&", "&amp;",
		"<", "&lt;",
		">", "&gt;",
		"|", `\|`,
		"`", "\\`",
		"*", `\*`,
		"_", `\_`,
		"[", `\[`,
		"]", `\]`,
		`\`, `\\`,
	).Replace(SafeLine(s))
}
