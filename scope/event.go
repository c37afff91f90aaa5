package scope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Event is what the runner tells a step about the event that started the
// workflow run. Reusable workflows see their caller's event.
type Event struct {
	Name       string         // GITHUB_EVENT_NAME: push, pull_request, ...
	Ref        string         // GITHUB_REF: refs/heads/main, refs/pull/42/merge, refs/tags/v1
	HeadRef    string         // GITHUB_HEAD_REF: PR head branch (pull_request* only)
	BaseRef    string         // GITHUB_BASE_REF: PR base branch (pull_request* only)
	Repository string         // GITHUB_REPOSITORY: owner/name
	Payload    map[string]any // decoded GITHUB_EVENT_PATH; numbers are json.Number
}

// EventFromEnv reads the runner's GITHUB_* variables through getenv and the
// webhook payload at GITHUB_EVENT_PATH through readFile.
func EventFromEnv(getenv func(string) string, readFile func(string) ([]byte, error)) (Event, error) {
	ev := Event{
		Name:       getenv("GITHUB_EVENT_NAME"),
		Ref:        getenv("GITHUB_REF"),
		HeadRef:    getenv("GITHUB_HEAD_REF"),
		BaseRef:    getenv("GITHUB_BASE_REF"),
		Repository: getenv("GITHUB_REPOSITORY"),
	}
	if ev.Name == "" {
		return Event{}, errors.New("GITHUB_EVENT_NAME is not set")
	}
	path := getenv("GITHUB_EVENT_PATH")
	if path == "" {
		return ev, nil
	}
	data, err := readFile(path)
	if err != nil {
		return Event{}, fmt.Errorf("reading event payload: %w", err)
	}
	ev.Payload, err = DecodePayload(data)
	if err != nil {
		return Event{}, err
	}
	return ev, nil
}

// DecodePayload decodes a webhook payload, which must be a JSON object.
// Numbers stay json.Number so PR numbers and IDs keep full precision.
func DecodePayload(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var payload map[string]any
	if err := dec.Decode(&payload); err != nil {
		return nil, fmt.Errorf("decoding event payload: %w", err)
	}
	if payload == nil {
		return nil, errors.New("decoding event payload: not a JSON object")
	}
	if dec.More() {
		return nil, errors.New("decoding event payload: trailing data after the JSON object")
	}
	return payload, nil
}

// lookup walks nested objects; nil when any step is missing or not an object.
func lookup(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

func str(m map[string]any, path ...string) string {
	s, _ := lookup(m, path...).(string)
	return s
}

func object(m map[string]any, path ...string) map[string]any {
	o, _ := lookup(m, path...).(map[string]any)
	return o
}

func boolean(m map[string]any, path ...string) bool {
	b, _ := lookup(m, path...).(bool)
	return b
}

// number reads a positive integer given as json.Number, float64 (payloads
// decoded without UseNumber) or a string of digits.
func number(m map[string]any, path ...string) (int64, bool) {
	var s string
	switch v := lookup(m, path...).(type) {
	case json.Number:
		s = v.String()
	case float64:
		if v != float64(int64(v)) {
			return 0, false
		}
		s = strconv.FormatInt(int64(v), 10)
	case string:
		s = v
	default:
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// refKind splits a full ref into its kind and short name.
type refKind int

const (
	refOther refKind = iota
	refBranch
	refTag
	refPull
)

func parseRef(ref string) (refKind, string) {
	switch {
	case strings.HasPrefix(ref, "refs/heads/") && len(ref) > len("refs/heads/"):
		return refBranch, strings.TrimPrefix(ref, "refs/heads/")
	case strings.HasPrefix(ref, "refs/tags/") && len(ref) > len("refs/tags/"):
		return refTag, strings.TrimPrefix(ref, "refs/tags/")
	case strings.HasPrefix(ref, "refs/pull/"):
		return refPull, strings.TrimPrefix(ref, "refs/pull/")
	}
	return refOther, ref
}

// pullNumberFromRef reads N from refs/pull/N/merge or refs/pull/N/head.
func pullNumberFromRef(ref string) (int64, bool) {
	kind, rest := parseRef(ref)
	if kind != refPull {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, "/")
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// branchName strips refs/heads/ if present (base_ref comes both ways).
func branchName(ref string) string {
	return strings.TrimPrefix(ref, "refs/heads/")
}
