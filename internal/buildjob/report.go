package buildjob

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/internal/ghaction"
)

// Reporter is where a run tells the user what it does: workflow commands
// and files in the action, plain lines on a terminal.
type Reporter interface {
	Mask(secrets ...string)
	Infof(format string, args ...any)
	Warnf(format string, args ...any)
	// Debugf is for what helps only when something is being debugged.
	Debugf(format string, args ...any)
	Group(title string, fn func() error) error
	SetOutput(name, value string) error
	Summary(s ghaction.Summary)
	// Progress is where BuildKit's progress display writes.
	Progress() io.Writer
	// Untrusted runs fn, whose output may come from the build, with the
	// runner's workflow commands switched off.
	Untrusted(fn func() error) error
	// StepGroups folds build steps into log groups (nil: no folding).
	StepGroups() buildkit.Grouper
}

// NewActionReporter is the reporter of the GitHub Action, speaking the
// runner's protocol through r.
func NewActionReporter(r *ghaction.Runner) Reporter { return &actionReporter{r: r} }

// actionReporter speaks the runner's protocol.
type actionReporter struct {
	r *ghaction.Runner
	// resume switches workflow commands back on while Untrusted runs.
	resume func()
}

func (a *actionReporter) Mask(secrets ...string) {
	_ = a.r.MaskSecrets(secrets...) // a late mask still masks; the order is tested
}
func (a *actionReporter) Infof(format string, args ...any) { a.r.Logf(format, args...) }
func (a *actionReporter) Warnf(format string, args ...any) {
	a.r.Warning(ghaction.SafeLine(fmt.Sprintf(format, args...)))
}
func (a *actionReporter) Debugf(format string, args ...any) {
	a.r.Debug(ghaction.SafeLine(fmt.Sprintf(format, args...)))
}
func (a *actionReporter) Group(title string, fn func() error) error { return a.r.Group(title, fn) }
func (a *actionReporter) SetOutput(name, value string) error        { return a.r.SetOutput(name, value) }
func (a *actionReporter) Summary(s ghaction.Summary) {
	if err := a.r.WriteSummary(ghaction.RenderSummary(s)); err != nil {
		a.r.Warning(ghaction.SafeLine(err.Error()))
	}
}
func (a *actionReporter) Progress() io.Writer { return a.r.Stdout() }

func (a *actionReporter) Untrusted(fn func() error) error {
	if err := a.stopCommands(); err != nil {
		return err
	}
	defer a.startCommands()
	return fn()
}

func (a *actionReporter) stopCommands() error {
	resume, err := a.r.StopCommands()
	a.resume = resume
	return err
}

func (a *actionReporter) startCommands() {
	if a.resume != nil {
		a.resume()
		a.resume = nil
	}
}

// StepGroups folds each build step into a log group. Group commands are
// issued between stop-commands windows, so the build's own output stays
// inert while the groups still work.
func (a *actionReporter) StepGroups() buildkit.Grouper { return stepGroups{a} }

type stepGroups struct{ a *actionReporter }

func (g stepGroups) Group(title string) {
	g.a.startCommands()
	g.a.r.Action.Group(title)
	_ = g.a.stopCommands()
}

func (g stepGroups) EndGroup() {
	g.a.startCommands()
	g.a.r.Action.EndGroup()
	_ = g.a.stopCommands()
}

// TerminalReporter prints plain lines on stderr; outputs are collected and
// printed at the end, on stdout, as `name: value`. Quiet (--progress quiet)
// leaves only the outputs; errors are printed by Main.
type TerminalReporter struct {
	out, err io.Writer
	quiet    bool
	outputs  map[string]string
}

func NewTerminalReporter(out, err io.Writer, quiet bool) *TerminalReporter {
	return &TerminalReporter{out: out, err: err, quiet: quiet, outputs: map[string]string{}}
}

func (t *TerminalReporter) Mask(...string) {}
func (t *TerminalReporter) Infof(format string, args ...any) {
	if !t.quiet {
		fmt.Fprintf(t.err, format+"\n", args...)
	}
}
func (t *TerminalReporter) Warnf(format string, args ...any) {
	if !t.quiet {
		fmt.Fprintf(t.err, "warning: "+format+"\n", args...)
	}
}

// Debugf drops the line: the CLI has no debug log.
func (t *TerminalReporter) Debugf(string, ...any) {}
func (t *TerminalReporter) Group(title string, fn func() error) error {
	if !t.quiet {
		fmt.Fprintf(t.err, "== %s\n", title)
	}
	return fn()
}
func (t *TerminalReporter) SetOutput(name, value string) error {
	t.outputs[name] = value
	return nil
}
func (t *TerminalReporter) Summary(ghaction.Summary)        {}
func (t *TerminalReporter) Progress() io.Writer             { return t.err }
func (t *TerminalReporter) Untrusted(fn func() error) error { return fn() }
func (t *TerminalReporter) StepGroups() buildkit.Grouper    { return nil }

// PrintOutputs writes the collected outputs, one `name: value` block each.
func (t *TerminalReporter) PrintOutputs(names ...string) {
	if len(names) == 0 {
		for n := range t.outputs {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	for _, n := range names {
		v := t.outputs[n]
		if v == "" {
			continue
		}
		if strings.Contains(v, "\n") {
			fmt.Fprintf(t.out, "%s:\n  %s\n", n, strings.ReplaceAll(v, "\n", "\n  "))
			continue
		}
		fmt.Fprintf(t.out, "%s: %s\n", n, v)
	}
}
