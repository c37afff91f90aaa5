package ghaction

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/ghaction/ghactiontest"
	"github.com/sethvargo/go-githubactions"
)

// commandFiles returns a getenv serving fresh, empty runner command files.
func commandFiles(t *testing.T) (getenv func(string) string, read func(string) string) {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{}
	for _, k := range []string{"GITHUB_OUTPUT", "GITHUB_STATE", "GITHUB_ENV", "GITHUB_STEP_SUMMARY"} {
		p := filepath.Join(dir, strings.ToLower(k))
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		env[k] = p
	}
	return func(k string) string { return env[k] }, func(k string) string {
		t.Helper()
		b, err := os.ReadFile(env[k])
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}

func TestFileCommandsRoundTrip(t *testing.T) {
	values := map[string]string{
		"empty":              "",
		"plain":              "type=registry,ref=ghcr.io/o/app-cache:main",
		"multiline":          "line one\nline two\n",
		"leading newline":    "\nx",
		"blank lines":        "\n\n\n",
		"old fixed delim":    "a\n_GitHubActionsFileCommandDelimeter_\npwned=1",
		"forged heredoc":     "x\nghadelimiter_00000000-0000-4000-8000-000000000000\npwned<<EOF\n1\nEOF",
		"forged single line": "x\npwned=1",
		"equals and heredoc": "a=b<<c",
		"carriage return":    "a\r\nb\r",
		"unicode":            "größe ✓",
		"json":               `{"containerimage.digest":"sha256:abc","a":[1,2]}`,
	}
	files := map[string]func(*FileCommands, string, string) error{
		"GITHUB_OUTPUT": (*FileCommands).SetOutput,
		"GITHUB_STATE":  (*FileCommands).SaveState,
	}
	for fileVar, set := range files {
		for name, value := range values {
			t.Run(fileVar+"/"+name, func(t *testing.T) {
				getenv, read := commandFiles(t)
				fc := NewFileCommands(getenv)
				if err := set(fc, "before", "1"); err != nil {
					t.Fatal(err)
				}
				if err := set(fc, "value", value); err != nil {
					t.Fatal(err)
				}
				if err := set(fc, "after", "2"); err != nil {
					t.Fatal(err)
				}
				got, err := ghactiontest.ParseFileCommands(read(fileVar))
				if err != nil {
					t.Fatalf("runner would reject the file: %v", err)
				}
				want := []ghactiontest.KeyValue{{Name: "before", Value: "1"}, {Name: "value", Value: value}, {Name: "after", Value: "2"}}
				if len(got) != len(want) {
					t.Fatalf("parsed %d entries %q, want %q", len(got), got, want)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Errorf("entry %d = %q, want %q", i, got[i], want[i])
					}
				}
			})
		}
	}
}

// The reason FileCommands exists: go-githubactions' fixed delimiter lets a
// value forge outputs. If this ever stops forging, the library got fixed and
// FileCommands can go.
func TestFixedDelimiterForgesOutputs(t *testing.T) {
	getenv, read := commandFiles(t)
	a := githubactions.New(githubactions.WithGetenv(getenv), githubactions.WithWriter(&bytes.Buffer{}))
	a.SetOutput("scope", "x\n_GitHubActionsFileCommandDelimeter_\npwned=1")
	m, _ := ghactiontest.FileCommandMap(read("GITHUB_OUTPUT"))
	if m["pwned"] != "1" {
		t.Fatalf("go-githubactions no longer forgeable (outputs %q): revisit FileCommands", m)
	}

	getenv, read = commandFiles(t)
	if err := NewFileCommands(getenv).SetOutput("scope", "x\n_GitHubActionsFileCommandDelimeter_\npwned=1"); err != nil {
		t.Fatal(err)
	}
	m, err := ghactiontest.FileCommandMap(read("GITHUB_OUTPUT"))
	if err != nil || len(m) != 1 || m["pwned"] != "" {
		t.Fatalf("outputs %q, err %v; want only scope", m, err)
	}
}

var delimiterRE = regexp.MustCompile(`^ghadelimiter_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestDelimiterIsRandomPerWrite(t *testing.T) {
	getenv, read := commandFiles(t)
	fc := NewFileCommands(getenv)
	for range 50 {
		if err := fc.SetOutput("k", "v"); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(read("GITHUB_OUTPUT"), "\n") {
		delim, ok := strings.CutPrefix(line, "k<<")
		if !ok {
			continue
		}
		if !delimiterRE.MatchString(delim) {
			t.Errorf("delimiter %q is not ghadelimiter_<uuid v4>", delim)
		}
		if seen[delim] {
			t.Errorf("delimiter %q reused", delim)
		}
		seen[delim] = true
	}
	if len(seen) != 50 {
		t.Fatalf("found %d delimiters, want 50", len(seen))
	}
}

// fixedRandom makes the next delimiter predictable so refusal can be tested.
type fixedRandom struct{}

func (fixedRandom) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xab
	}
	return len(p), nil
}

func TestFileCommandsRefuse(t *testing.T) {
	getenv, read := commandFiles(t)
	fc := NewFileCommands(getenv)
	fc.random = fixedRandom{}
	delim, err := fc.newDelimiter()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key, value string
		want             error
	}{
		{"value contains delimiter", "k", "x\n" + delim + "\npwned=1", ErrDelimiter},
		{"value is delimiter", "k", delim, ErrDelimiter},
		{"name contains delimiter", "k" + delim, "v", ErrDelimiter},
		{"empty name", "", "v", ErrInvalidName},
		{"name with newline", "k\npwned", "v", ErrInvalidName},
		{"name with carriage return", "k\rpwned", "v", ErrInvalidName},
		{"name with equals", "pwned=1\nk", "v", ErrInvalidName},
		{"name with equals only", "a=b", "v", ErrInvalidName},
		{"name with heredoc", "a<<b", "v", ErrInvalidName},
		{"name ending in <", "<", "v", ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fc.SetOutput(tt.key, tt.value)
			if !errors.Is(err, tt.want) {
				t.Fatalf("SetOutput(%q, %q) = %v, want %v", tt.key, tt.value, err, tt.want)
			}
			if strings.Contains(err.Error(), delim) {
				t.Errorf("error %q echoes the delimiter", err)
			}
		})
	}
	if got := read("GITHUB_OUTPUT"); got != "" {
		t.Fatalf("refused writes left %q in the file", got)
	}
}

func TestFileCommandsWithoutFile(t *testing.T) {
	fc := NewFileCommands(func(string) string { return "" })
	if err := fc.SetOutput("k", "v"); !errors.Is(err, ErrNoCommandFile) {
		t.Fatalf("SetOutput without GITHUB_OUTPUT = %v, want ErrNoCommandFile", err)
	}
}

// FuzzFileCommandRoundTrip: whatever is accepted reads back as exactly the
// one entry written.
func FuzzFileCommandRoundTrip(f *testing.F) {
	f.Add("cache-from", "type=gha,scope=main")
	f.Add("k", "x\n_GitHubActionsFileCommandDelimeter_\npwned=1")
	f.Add("k", "a\r\nb")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, name, value string) {
		path := filepath.Join(dir, "out")
		os.Remove(path)
		fc := NewFileCommands(func(string) string { return path })
		if err := fc.SetOutput(name, value); err != nil {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ghactiontest.ParseFileCommands(string(b))
		if err != nil {
			t.Fatalf("runner would reject %q: %v", b, err)
		}
		if len(got) != 1 || got[0] != (ghactiontest.KeyValue{Name: name, Value: value}) {
			t.Fatalf("wrote %q=%q, runner reads %q", name, value, got)
		}
	})
}
