package ghaction

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/sethvargo/go-githubactions"
)

// ErrLateMask reports that MaskSecrets ran after something else had already
// been printed: the masks still apply from now on, but earlier lines may have
// shown the secret.
var ErrLateMask = errors.New("secrets masked after output was printed")

// Runner bundles go-githubactions (inputs, masks, annotations, groups, step
// summary) with FileCommands (outputs, state, env). One per process; pass it
// around, no globals.
type Runner struct {
	// Action is the go-githubactions handle. Prefer Runner's methods: they
	// keep user-controlled text from being read as a workflow command.
	Action *githubactions.Action
	Files  *FileCommands

	getenv func(string) string
	out    *trackingWriter
	masker *githubactions.Action // writes past the tracker: masks never count as output
	maskMu sync.Mutex
	masked map[string]bool
}

// New returns a Runner reading the environment through getenv (os.Getenv if
// nil) and printing to w (os.Stdout if nil).
func New(getenv func(string) string, w io.Writer) *Runner {
	if getenv == nil {
		getenv = os.Getenv
	}
	if w == nil {
		w = os.Stdout
	}
	tw := &trackingWriter{w: w}
	return &Runner{
		Action: githubactions.New(githubactions.WithGetenv(getenv), githubactions.WithWriter(tw)),
		Files:  NewFileCommands(getenv),
		getenv: getenv,
		out:    tw,
		masker: githubactions.New(githubactions.WithGetenv(getenv), githubactions.WithWriter(&lockedWriter{tw: tw})),
		masked: map[string]bool{},
	}
}

// Getenv reads the environment the Runner was built with.
func (r *Runner) Getenv(key string) string { return r.getenv(key) }

// Stdout is the Runner's output stream. Text written here is NOT neutralised:
// use Logf, or wrap raw tool output in StopCommands.
func (r *Runner) Stdout() io.Writer { return r.out }

// MaskSecrets issues ::add-mask:: for every non-blank value, and for each line
// of a multi-line value (the runner masks whole values; a secret printed one
// line at a time must match line by line). Call it before anything else
// prints: it returns ErrLateMask (after masking anyway) when it did not.
// A value already masked by this Runner is not masked again.
func (r *Runner) MaskSecrets(values ...string) error {
	r.maskMu.Lock()
	defer r.maskMu.Unlock()
	late := r.out.wroteOutput()
	mask := func(v string) {
		if strings.TrimSpace(v) == "" || r.masked[v] {
			return
		}
		r.masked[v] = true
		r.masker.AddMask(v)
	}
	for _, v := range values {
		mask(v)
		if strings.ContainsAny(v, "\r\n") {
			for _, line := range strings.FieldsFunc(v, func(c rune) bool { return c == '\n' || c == '\r' }) {
				mask(line)
			}
		}
	}
	if late {
		return ErrLateMask
	}
	return nil
}

// Input returns the trimmed input `name` (INPUT_<NAME>, hyphens kept: the
// runner sets INPUT_DRY-RUN for `dry-run`).
func (r *Runner) Input(name string) string { return r.Action.GetInput(name) }

// Position places an annotation on a file; all fields are optional.
type Position struct {
	File      string
	Line, Col int
	Title     string
}

func (p Position) fields() map[string]string {
	m := map[string]string{}
	if p.File != "" {
		m["file"] = p.File
	}
	if p.Line > 0 {
		m["line"] = strconv.Itoa(p.Line)
	}
	if p.Col > 0 {
		m["col"] = strconv.Itoa(p.Col)
	}
	if p.Title != "" {
		m["title"] = p.Title
	}
	return m
}

func (r *Runner) annotated(at []Position) *githubactions.Action {
	if len(at) == 0 {
		return r.Action
	}
	return r.Action.WithFieldsMap(at[0].fields())
}

// Warning prints a warning annotation. msg is data, never a format string;
// go-githubactions escapes newlines, so msg cannot start a second command.
func (r *Runner) Warning(msg string, at ...Position) { r.annotated(at).Warningf("%s", msg) }

// Error prints an error annotation (it does not fail the step by itself).
func (r *Runner) Error(msg string, at ...Position) { r.annotated(at).Errorf("%s", msg) }

// Debug prints a debug line, shown when step debug logging is on.
func (r *Runner) Debug(msg string) { r.Action.Debugf("%s", msg) }

// Logf prints one plain log line passed through SafeLine.
func (r *Runner) Logf(format string, args ...any) {
	r.Action.Infof("%s", SafeLine(fmt.Sprintf(format, args...)))
}

// Group folds everything fn prints under title; the group is closed even
// when fn fails or panics.
func (r *Runner) Group(title string, fn func() error) error {
	r.Action.Group(title)
	defer r.Action.EndGroup()
	return fn()
}

// StopCommands stops the runner from processing workflow commands until the
// returned resume func is called (::stop-commands::<random token>), so raw
// tool output such as a Dockerfile's RUN lines cannot issue commands.
func (r *Runner) StopCommands() (resume func(), err error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("reading random token: %w", err)
	}
	token := "bkcache-" + hex.EncodeToString(b[:])
	r.Action.IssueCommand(&githubactions.Command{Name: "stop-commands", Message: token})
	var once sync.Once
	return func() {
		once.Do(func() { r.Action.IssueCommand(&githubactions.Command{Name: token}) })
	}, nil
}

// SetOutput and SaveState write through Files (random delimiter).
func (r *Runner) SetOutput(name, value string) error { return r.Files.SetOutput(name, value) }
func (r *Runner) SaveState(name, value string) error { return r.Files.SaveState(name, value) }

// WriteSummary appends markdown to the job summary (GITHUB_STEP_SUMMARY).
// Without the variable (local runs) it does nothing.
func (r *Runner) WriteSummary(markdown string) (err error) {
	if r.getenv("GITHUB_STEP_SUMMARY") == "" {
		return nil
	}
	// go-githubactions panics when the file cannot be written.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("writing job summary: %v", p)
		}
	}()
	r.Action.AddStepSummary(markdown)
	return nil
}

// trackingWriter remembers whether anything has been printed, so MaskSecrets
// can tell that it came too late.
type trackingWriter struct {
	mu    sync.Mutex
	w     io.Writer
	wrote bool
}

func (t *trackingWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(p) > 0 {
		t.wrote = true
	}
	return t.w.Write(p)
}

func (t *trackingWriter) wroteOutput() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.wrote
}

// lockedWriter writes to the tracker's target without marking output.
type lockedWriter struct{ tw *trackingWriter }

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.tw.mu.Lock()
	defer l.tw.mu.Unlock()
	return l.tw.w.Write(p)
}
