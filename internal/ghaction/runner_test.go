package ghaction

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/ghaction/ghactiontest"
)

func newTestRunner(t *testing.T, env map[string]string) (*Runner, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	return New(func(k string) string { return env[k] }, &out), &out
}

var hostile = []string{
	"x\n::set-output name=pwned::1",
	"x\r\n::error::forged",
	"::warning::forged",
	"  \t::add-mask::everything",
	"%0A::notice::forged",
	"x%0D%0A::endgroup::",
	"##[error]legacy forged",
	"x\n##[set-output name=pwned;]1",
	"a::b\n::stop-commands::tok",
	"file.go,line=1::x",
}

func TestInjectionIsInert(t *testing.T) {
	for _, evil := range hostile {
		t.Run(evil, func(t *testing.T) {
			r, out := newTestRunner(t, nil)
			r.Warning(evil, Position{File: evil, Line: 3, Title: evil})
			r.Error(evil)
			r.Debug(evil)
			r.Logf("scope: %s", evil)
			if err := r.Group(evil, func() error { r.Logf("%s", evil); return nil }); err != nil {
				t.Fatal(err)
			}
			cmds, legacy := parseCommands(out.String())
			wantNames := []string{"warning", "error", "debug", "group", "endgroup"}
			if len(cmds) != len(wantNames) {
				t.Fatalf("runner sees %d commands %q, want %q\noutput:\n%s", len(cmds), cmds, wantNames, out)
			}
			for i, c := range cmds {
				if c.Name != wantNames[i] {
					t.Errorf("command %d is %q, want %q", i, c.Name, wantNames[i])
				}
				// The runner unescapes the data back to exactly what we sent.
				if c.Name != "endgroup" && c.Data != evil {
					t.Errorf("command %s data = %q, want %q", c.Name, c.Data, evil)
				}
			}
			if got := cmds[0].Props; got["file"] != evil || got["title"] != evil || got["line"] != "3" {
				t.Errorf("warning properties = %q", got)
			}
			if len(legacy) > 0 {
				t.Errorf("lines with a legacy ##[ command: %q", legacy)
			}
		})
	}
}

func TestSafeLine(t *testing.T) {
	tests := map[string]string{
		"plain":                        "plain",
		"::warning::x":                 `\::warning::x`,
		"  ::warning::x":               `  \::warning::x`,
		"a\n::set-output name=x::1":    `a\n::set-output name=x::1`,
		"a\r\nb":                       `a\r\nb`,
		"see ##[error]x":               `see #\#[error]x`,
		"in the middle :: is harmless": "in the middle :: is harmless",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			if got := SafeLine(in); got != want {
				t.Errorf("SafeLine(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func FuzzSafeLine(f *testing.F) {
	for _, h := range hostile {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SafeLine(s)
		if strings.ContainsAny(got, "\r\n") {
			t.Fatalf("SafeLine(%q) = %q spans lines", s, got)
		}
		if cmds, legacy := parseCommands(got); len(cmds) > 0 || len(legacy) > 0 {
			t.Fatalf("SafeLine(%q) = %q is a workflow command", s, got)
		}
	})
}

func TestMaskSecretsFirst(t *testing.T) {
	r, out := newTestRunner(t, nil)
	if err := r.MaskSecrets("s3cr3t", "", "  ", "line1\nline2", "s3cr3t"); err != nil {
		t.Fatalf("MaskSecrets before any output = %v", err)
	}
	r.Logf("hello")
	if err := r.MaskSecrets("late", "line1"); !errors.Is(err, ErrLateMask) {
		t.Fatalf("MaskSecrets after output = %v, want ErrLateMask", err)
	}
	cmds, _ := parseCommands(out.String())
	var masks []string
	for _, c := range cmds {
		if c.Name == "add-mask" {
			masks = append(masks, c.Data)
		}
	}
	want := []string{"s3cr3t", "line1\nline2", "line1", "line2", "late"}
	if strings.Join(masks, "|") != strings.Join(want, "|") {
		t.Fatalf("masks = %q, want %q", masks, want)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, l := range lines[:4] {
		if !strings.HasPrefix(l, "::add-mask::") {
			t.Errorf("line %d = %q, want a mask before anything else", i, l)
		}
	}
}

func TestInput(t *testing.T) {
	r, _ := newTestRunner(t, map[string]string{"INPUT_CACHE-SCOPE": " app "})
	if got := r.Input("cache-scope"); got != "app" {
		t.Errorf("Input(cache-scope) = %q", got)
	}
}

func TestGroupClosesOnError(t *testing.T) {
	r, out := newTestRunner(t, nil)
	boom := errors.New("boom")
	if err := r.Group("build", func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Group = %v", err)
	}
	if got := out.String(); got != "::group::build\n::endgroup::\n" {
		t.Fatalf("output %q", got)
	}
}

func TestStopCommands(t *testing.T) {
	r, out := newTestRunner(t, nil)
	resume, err := r.StopCommands()
	if err != nil {
		t.Fatal(err)
	}
	resume()
	resume()
	cmds, _ := parseCommands(out.String())
	if len(cmds) != 2 || cmds[0].Name != "stop-commands" || cmds[1].Name != cmds[0].Data || len(cmds[0].Data) < 32 {
		t.Fatalf("commands %q, want stop-commands <token> then ::<token>:: once", cmds)
	}
}

func TestWriteSummaryAndState(t *testing.T) {
	getenv, read := commandFiles(t)
	var out bytes.Buffer
	r := New(getenv, &out)
	if err := r.WriteSummary("### one"); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteSummary("### two"); err != nil {
		t.Fatal(err)
	}
	if got := read("GITHUB_STEP_SUMMARY"); got != "### one\n### two\n" {
		t.Errorf("summary file %q", got)
	}
	if err := r.SaveState("bkcache_main_ran", "true"); err != nil {
		t.Fatal(err)
	}
	if m, err := ghactiontest.FileCommandMap(read("GITHUB_STATE")); err != nil || m["bkcache_main_ran"] != "true" {
		t.Errorf("state %q, %v", m, err)
	}
	if out.Len() != 0 {
		t.Errorf("file commands printed %q", out.String())
	}
	local, _ := newTestRunner(t, nil)
	if err := local.WriteSummary("x"); err != nil {
		t.Errorf("WriteSummary without GITHUB_STEP_SUMMARY = %v", err)
	}
}
