package buildkit

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Build rejects bad inputs before it connects to anything.
func TestBuildInputErrors(t *testing.T) {
	dir := newContext(t)
	// No builder anywhere: not even a Docker engine for buildx's default.
	noEnv := WithGetenv(fakeEnv(map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"}))
	tests := []struct {
		name    string
		req     Request
		wantErr string
	}{
		{"progress", Request{Build: BuildOptions{Context: dir}, Progress: "fancy", Builder: "unix:///nonexistent.sock"}, `progress: unknown mode "fancy"`},
		{"outputs", Request{Build: BuildOptions{Context: dir, Outputs: []string{"type=foo"}}, Builder: "unix:///nonexistent.sock"}, `outputs: unknown type "foo"`},
		{"builder", Request{Build: BuildOptions{Context: dir}, Builder: "ftp://x"}, `builder: unknown scheme "ftp"`},
		{"no builder", Request{Build: BuildOptions{Context: dir}}, "no BuildKit builder found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(context.Background(), tt.req, noEnv)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	if _, err := Build(context.Background(), tests[3].req, noEnv); !errors.Is(err, ErrNoBuilder) {
		t.Errorf("err = %v, want ErrNoBuilder", err)
	}
}
