package buildjob

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/ghaction"
	"github.com/sirupsen/logrus"
)

// recordingReporter is a terminal reporter that also keeps debug lines.
type recordingReporter struct {
	*TerminalReporter
	debug []string
}

func (r *recordingReporter) Debugf(format string, args ...any) {
	r.debug = append(r.debug, fmt.Sprintf(format, args...))
}

// What BuildKit's client logs through logrus never reaches stderr raw:
// noise becomes debug, warnings become `warning:` lines after the build.
func TestBuildKitLogCaptured(t *testing.T) {
	var stderr bytes.Buffer
	logrus.SetOutput(&stderr)
	l := captureBuildKitLog()
	logrus.WithError(errors.New("operation not supported")).WithField("path", "/c/ingest").Warn("failed check for fsverity support")
	logrus.Warn("local cache import at /c skipped: digest sha256:1 unavailable")
	logrus.Info("an info line")
	l.restore()
	logrus.SetOutput(&bytes.Buffer{})
	if stderr.Len() > 0 {
		t.Fatalf("raw log lines printed:\n%s", stderr.String())
	}

	var out bytes.Buffer
	rep := &recordingReporter{TerminalReporter: NewTerminalReporter(&out, &out, false)}
	l.flush(rep)
	if got, want := out.String(), "warning: buildkit: local cache import at /c skipped: digest sha256:1 unavailable\n"; got != want {
		t.Errorf("warnings = %q, want %q", got, want)
	}
	if len(rep.debug) != 2 || !strings.Contains(rep.debug[0], "fsverity") || !strings.Contains(rep.debug[0], "error=operation not supported path=/c/ingest") {
		t.Errorf("debug = %q", rep.debug)
	}
}

// In the action, BuildKit's warnings are annotations and its noise is
// ::debug::.
func TestBuildKitLogInAction(t *testing.T) {
	l := captureBuildKitLog()
	logrus.Warn("failed check for fsverity support")
	logrus.Warn("something real")
	l.restore()
	var out bytes.Buffer
	l.flush(&actionReporter{r: ghaction.New(func(string) string { return "" }, &out)})
	want := "::debug::buildkit: failed check for fsverity support\n::warning::buildkit: something real\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}
