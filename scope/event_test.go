package scope

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
)

func TestEventFromEnv(t *testing.T) {
	env := map[string]string{
		"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/17/merge",
		"GITHUB_HEAD_REF": "feature/login", "GITHUB_BASE_REF": "develop",
		"GITHUB_REPOSITORY": repo, "GITHUB_EVENT_PATH": "testdata/pull_request_same_repo.json",
	}
	ev, err := EventFromEnv(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Name != "pull_request" || ev.Ref != "refs/pull/17/merge" || ev.HeadRef != "feature/login" || ev.BaseRef != "develop" || ev.Repository != repo {
		t.Errorf("event = %+v", ev)
	}
	if n, ok := number(ev.Payload, "pull_request", "number"); !ok || n != 17 {
		t.Errorf("pull_request.number = %v, %v", n, ok)
	}
	if _, isNumber := lookup(ev.Payload, "pull_request", "id").(json.Number); !isNumber {
		t.Errorf("ids should decode as json.Number, got %T", lookup(ev.Payload, "pull_request", "id"))
	}
}

func TestEventFromEnvErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		file    string
		readErr error
		want    string
	}{
		{"no event name", map[string]string{"GITHUB_REF": "refs/heads/main"}, "", nil, "GITHUB_EVENT_NAME is not set"},
		{"unreadable payload", nil, "", fs.ErrNotExist, "reading event payload"},
		{"not JSON", nil, "{", nil, "decoding event payload"},
		{"JSON array", nil, "[]", nil, "decoding event payload"},
		{"JSON null", nil, "null", nil, "not a JSON object"},
		{"trailing data", nil, `{} {}`, nil, "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": "/e.json"}
			}
			read := func(string) ([]byte, error) { return []byte(tt.file), tt.readErr }
			_, err := EventFromEnv(func(k string) string { return env[k] }, read)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
			if tt.readErr != nil && !errors.Is(err, tt.readErr) {
				t.Errorf("error %v does not wrap %v", err, tt.readErr)
			}
		})
	}
}

func TestEventFromEnvWithoutPayload(t *testing.T) {
	env := map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main"}
	ev, err := EventFromEnv(func(k string) string { return env[k] }, func(string) ([]byte, error) {
		t.Fatal("read without GITHUB_EVENT_PATH")
		return nil, nil
	})
	if err != nil || ev.Payload != nil || ev.Ref != "refs/heads/main" {
		t.Fatalf("ev = %+v, err = %v", ev, err)
	}
}
