// Package ghaction is bkcache's side of the GitHub Actions runner contract:
// inputs, masks, annotations, groups, file commands (outputs, state, env) and
// the job summary. Everything reads the environment through an injected
// getenv and writes to an injected writer, so tests never touch the process.
package ghaction

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Errors returned by FileCommands; check with errors.Is.
var (
	ErrNoCommandFile = errors.New("runner file command path not set")
	ErrInvalidName   = errors.New("invalid name")
	ErrDelimiter     = errors.New("contains the heredoc delimiter")
)

// FileCommands writes the runner's key/value file commands: GITHUB_OUTPUT
// and GITHUB_STATE.
//
// Hand-rolled because go-githubactions v1.3.1 uses one fixed, public heredoc
// delimiter ("_GitHubActionsFileCommandDelimeter_"): a value containing that
// line ends the heredoc early and every following line is parsed as a new
// name=value pair, i.e. a multi-line input could forge outputs or env vars.
// Like @actions/core (file-command.ts prepareKeyValueMessage) we pick a fresh
// random delimiter for every write and refuse names or values containing it.
type FileCommands struct {
	getenv func(string) string
	random io.Reader // crypto/rand.Reader unless a test swaps it
}

// NewFileCommands returns FileCommands reading the file paths through getenv.
func NewFileCommands(getenv func(string) string) *FileCommands {
	if getenv == nil {
		getenv = os.Getenv
	}
	return &FileCommands{getenv: getenv, random: rand.Reader}
}

// SetOutput appends an output of the current step to GITHUB_OUTPUT.
func (f *FileCommands) SetOutput(name, value string) error {
	return f.write("GITHUB_OUTPUT", name, value)
}

// SaveState appends a value for the post step to GITHUB_STATE; the runner
// hands it to the post step as STATE_<name>.
func (f *FileCommands) SaveState(name, value string) error {
	return f.write("GITHUB_STATE", name, value)
}

func (f *FileCommands) write(fileVar, name, value string) error {
	path := f.getenv(fileVar)
	if path == "" {
		return fmt.Errorf("%s: %w", fileVar, ErrNoCommandFile)
	}
	delim, err := f.newDelimiter()
	if err != nil {
		return err
	}
	msg, err := keyValueMessage(name, value, delim)
	if err != nil {
		return err
	}
	// The runner creates the file before the step starts; O_CREATE only
	// matters for local runs and tests.
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", fileVar, err)
	}
	if _, err := io.WriteString(fh, msg); err != nil {
		fh.Close()
		return fmt.Errorf("writing %s: %w", fileVar, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", fileVar, err)
	}
	return nil
}

// newDelimiter returns "ghadelimiter_" plus a random UUIDv4, the toolkit's form.
func (f *FileCommands) newDelimiter() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(f.random, b[:]); err != nil {
		return "", fmt.Errorf("reading random delimiter: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return "ghadelimiter_" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// keyValueMessage formats one heredoc entry, refusing anything the runner's
// parser (EnvFileKeyValuePairs) would read differently from what we meant.
func keyValueMessage(name, value, delim string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty", ErrInvalidName)
	case strings.ContainsAny(name, "\r\n"):
		return "", fmt.Errorf("%w %q: contains a newline", ErrInvalidName, name)
	// The runner splits a line at whichever of "=" and "<<" comes first: a
	// name containing "=" or "<" (a trailing one joins our "<<") would be
	// read as a different name or delimiter.
	case strings.ContainsAny(name, "=<"):
		return "", fmt.Errorf("%w %q: contains \"=\" or \"<\"", ErrInvalidName, name)
	case strings.Contains(name, delim):
		return "", fmt.Errorf("name %w", ErrDelimiter)
	case strings.Contains(value, delim):
		return "", fmt.Errorf("value of %q %w", name, ErrDelimiter)
	}
	return name + "<<" + delim + "\n" + value + "\n" + delim + "\n", nil
}
