package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// gapInMessage is two spaces in a row, or a space before a comma, a
// closing parenthesis or a colon that ends a word: what a message shows
// when a word is missing ("from  failed"). Indentation after a newline
// and Markdown's `:warning:` are not gaps.
var gapInMessage = regexp.MustCompile(`[^\n ]  |[^\n] [,)]|[^\n] :( |$)`)

// TestMessageGaps reads every string literal the product passes to a call
// (formats of Sprintf, Errorf, Infof, Warnf, …, errors.New texts) and
// refuses a gap in one. A gap that only an empty argument makes is not
// visible here; the messages that can get an empty name (a token's empty
// ref or writable scope) have their own tests (cli.TestRefText,
// plan.TestEnforceTrust, runnerenv.TestEmptyWriteScope).
func TestMessageGaps(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	for _, layer := range layers {
		for _, dir := range layer {
			files, err := filepath.Glob(filepath.Join(dir, "*.go"))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if strings.HasSuffix(f, "_test.go") {
					continue
				}
				src, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				af, err := parser.ParseFile(fset, f, src, parser.SkipObjectResolution)
				if err != nil {
					t.Fatal(err)
				}
				ast.Inspect(af, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
						if x, ok := sel.X.(*ast.Ident); ok && x.Name == "regexp" {
							return false // a pattern, not a message
						}
					}
					for _, arg := range call.Args {
						lit, ok := arg.(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							continue
						}
						s, err := strconv.Unquote(lit.Value)
						if err != nil {
							continue
						}
						checked++
						if m := gapInMessage.FindString(s); m != "" {
							t.Errorf("%s: %q has a gap (%q)", fset.Position(lit.Pos()), s, m)
						}
					}
					return true
				})
			}
		}
	}
	if checked < 100 {
		t.Fatalf("checked only %d strings: the scan misses the product's messages", checked)
	}
}

// TestGapInMessage: the pattern finds gaps and leaves indentation alone.
func TestGapInMessage(t *testing.T) {
	for _, tc := range []struct {
		s   string
		gap bool
	}{
		{"cache import %s from %s failed", false},
		{"cache import gha from  failed", true},
		{"scope %s ()", false},
		{"scope x (refs/heads/main )", true},
		{"a , b", true},
		{"name :", true},
		{"- :warning: %s", false},
		{"%s:\n  %s\n", false},
		{"  indented", false},
		{"", false},
	} {
		if got := gapInMessage.MatchString(tc.s); got != tc.gap {
			t.Errorf("gap in %q = %v, want %v", tc.s, got, tc.gap)
		}
	}
}
