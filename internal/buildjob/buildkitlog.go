package buildjob

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// buildkitLog captures what BuildKit's client logs in this process through
// logrus's standard logger, which would otherwise print raw
// `level=warning msg=...` lines on stderr, outside the run's own log. The
// entries are held and replayed through the reporter after the build: while
// the build runs, the action has workflow commands stopped, so an
// annotation written then would be inert.
type buildkitLog struct {
	mu      sync.Mutex
	entries []logEntry
	restore func()
}

type logEntry struct {
	level logrus.Level
	text  string
}

// buildkitNoise are client log messages that say nothing the user can act
// on. The content store checks for fsverity on every local cache directory
// and warns on filesystems without it (containerd plugins/content/local).
var buildkitNoise = []string{"failed check for fsverity support"}

// captureBuildKitLog routes logrus's standard logger into a buildkitLog
// until restore is called.
func captureBuildKitLog() *buildkitLog {
	l := &buildkitLog{}
	std := logrus.StandardLogger()
	out := std.Out
	std.SetOutput(io.Discard)
	hooks := std.ReplaceHooks(logrus.LevelHooks{})
	std.AddHook(l)
	l.restore = func() {
		std.SetOutput(out)
		std.ReplaceHooks(hooks)
	}
	return l
}

func (l *buildkitLog) Levels() []logrus.Level { return logrus.AllLevels }

func (l *buildkitLog) Fire(e *logrus.Entry) error {
	text := strings.TrimSpace(e.Message)
	for _, k := range slices.Sorted(maps.Keys(e.Data)) {
		text += fmt.Sprintf(" %s=%v", k, e.Data[k])
	}
	l.mu.Lock()
	l.entries = append(l.entries, logEntry{level: e.Level, text: text})
	l.mu.Unlock()
	return nil
}

// flush reports the entries held so far: warnings and errors as warnings,
// known noise and everything else as debug lines.
func (l *buildkitLog) flush(rep Reporter) {
	l.mu.Lock()
	entries := l.entries
	l.entries = nil
	l.mu.Unlock()
	for _, e := range entries {
		if e.level <= logrus.WarnLevel && !isBuildKitNoise(e.text) {
			rep.Warnf("buildkit: %s", e.text)
			continue
		}
		rep.Debugf("buildkit: %s", e.text)
	}
}

func isBuildKitNoise(text string) bool {
	for _, n := range buildkitNoise {
		if strings.Contains(text, n) {
			return true
		}
	}
	return false
}
