package buildkit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// TestIsImportMiss uses the vertex errors of real imports, logged by
// TestE2EImportMissOrFailure against the test environment's registry,
// Versity S3 and Azurite, and against a docker-registry with token auth
// that refuses a pull the way Docker Hub does.
func TestIsImportMiss(t *testing.T) {
	tests := []struct {
		name, msg string
		miss      bool
	}{
		{"registry tag not pushed", "failed to configure registry cache importer: 127.0.0.1:5701/imports/74a646e14642:buildkit_main: not found", true},
		{"docker hub short name", "failed to configure registry cache importer: docker.io/user/app-cache:buildkit_main: not found\n", true},
		{"registry tag not pushed, docker driver", "127.0.0.1:5001/e2e-builders/cbce8ad5bd-img:main: not found", true},
		{"docker hub refusal", "failed to configure registry cache importer: pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed", false},
		{"registry 401", "failed to configure registry cache importer: unexpected status from HEAD request to http://127.0.0.1:44911/v2/private/cache/manifests/buildkit_main: 401 Unauthorized", false},
		{"manifest blob gone", "content at http://127.0.0.1:5701/v2/x/blobs/sha256:abc not found: not found", false},
		{"no resolve hosts", "failed to configure registry cache importer: no resolve hosts: not found", false},
		{"s3 wrong key", "operation error S3: GetObject, https response error StatusCode: 403, RequestID: FL55ZHSKQJ7NG2T5, HostID: rLe5YTek, api error SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided. Check your key and signing method.", false},
		{"azblob wrong key", "failed to configure azblob cache importer: failed to create container client: failed to get properties of cache container imports-74a646e14642: GET http://127.0.0.1:17000/devstoreaccount1/imports-74a646e14642\n---\nRESPONSE 403: 403 Server failed to authenticate the request.\nERROR CODE: AuthorizationFailure\n", false},
		{"azblob blob missing", "blob sha256:abc not found", false},
		{"registry unreachable", `failed to configure registry cache importer: failed to do request: Head "https://127.0.0.1:1/v2/e2e/x/manifests/buildkit_main": dial tcp 127.0.0.1:1: connect: connection refused`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isImportMiss(tt.msg); got != tt.miss {
				t.Errorf("isImportMiss(%q) = %v, want %v", tt.msg, got, tt.miss)
			}
		})
	}
}

// TestIsJobLost builds the errors the way the client receives them: the
// real one (seen with an unreachable azblob export, e2e/faults_test.go) is
// "failed to receive status: rpc error: code = NotFound desc = no such job …".
func TestIsJobLost(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"job lost", fmt.Errorf("failed to receive status: %w", status.Error(codes.NotFound, "no such job nkm4ylu7ejydjal4m2vjkj1wg")), true},
		{"base image missing", fmt.Errorf("failed to solve: %w", status.Error(codes.NotFound, "docker.io/library/nothing:latest: not found")), false},
		{"text without the code", errors.New("failed to solve: no such job x"), false},
		{"other code", status.Error(codes.Unknown, "no such job x"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isJobLost(tt.err); got != tt.want {
				t.Errorf("isJobLost(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
