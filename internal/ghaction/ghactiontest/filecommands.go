// Package ghactiontest reads what the action wrote, the way the GitHub
// Actions runner reads it, for tests. Nothing in the product imports it.
package ghactiontest

import (
	"fmt"
	"strings"
)

// KeyValue is one entry of a GITHUB_OUTPUT / GITHUB_STATE / GITHUB_ENV file.
type KeyValue struct{ Name, Value string }

// ParseFileCommands parses a key/value command file the way the Linux runner
// does (actions/runner src/Runner.Worker/FileCommandManager.cs,
// EnvFileKeyValuePairs, used by SetOutputFileCommand, SaveStateFileCommand
// and SetEnvFileCommand): lines split on LF; a line is "name=value" or
// "name<<DELIM" followed by value lines up to a line equal to DELIM, whichever
// of "=" and "<<" comes first decides, so tests check our files exactly as
// the runner reads them.
func ParseFileCommands(text string) ([]KeyValue, error) {
	var out []KeyValue
	index := 0
	// readLine mirrors the runner's ReadLine: the line, and whether it ended
	// with a newline (false for the last, unterminated line).
	readLine := func() (line string, ok, newline bool) {
		if index >= len(text) {
			return "", false, false
		}
		start := index
		lf := strings.IndexByte(text[index:], '\n')
		if lf < 0 {
			index = len(text)
			return text[start:], true, false
		}
		index += lf + 1
		return text[start : index-1], true, true
	}
	for {
		line, ok, _ := readLine()
		if !ok {
			return out, nil
		}
		if line == "" {
			continue
		}
		eq := strings.Index(line, "=")
		hd := strings.Index(line, "<<")
		switch {
		case eq >= 0 && (hd < 0 || eq < hd):
			name, value, _ := strings.Cut(line, "=")
			out = append(out, KeyValue{name, value})
		case hd >= 0 && (eq < 0 || hd < eq):
			name, delim, _ := strings.Cut(line, "<<")
			if name == "" || delim == "" {
				return out, fmt.Errorf("invalid format %q: name and delimiter must not be empty", line)
			}
			start, end := index, index
			for {
				l, ok, nl := readLine()
				if !ok {
					return out, fmt.Errorf("invalid value: matching delimiter not found %q", delim)
				}
				if l == delim {
					break
				}
				if !nl {
					return out, fmt.Errorf("invalid value: EOF marker missing new line")
				}
				end = index - 1
			}
			value := ""
			if end > start {
				value = text[start:end]
			}
			out = append(out, KeyValue{name, value})
		default:
			return out, fmt.Errorf("invalid format %q", line)
		}
	}
}

// FileCommandMap is ParseFileCommands folded into a map, later entries
// winning, as the runner applies them.
func FileCommandMap(text string) (map[string]string, error) {
	kvs, err := ParseFileCommands(text)
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Name] = kv.Value
	}
	return m, err
}
