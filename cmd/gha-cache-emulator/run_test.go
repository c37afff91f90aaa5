package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/ghacache/emulator"
)

func TestRunErrors(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no subcommand", nil, 2, "usage:"},
		{"unknown subcommand", []string{"bogus"}, 2, `unknown subcommand "bogus"`},
		{"unknown flag", []string{"serve", "--bogus"}, 2, "-bogus"},
		{"serve missing flags", []string{"serve"}, 1, "missing required flags: --blob-account-key, --blob-account-name, --blob-account-url, --secret-file"},
		{"serve negative quota", []string{"serve", "--secret-file", secret, "--blob-account-url", "http://127.0.0.1:1/a", "--blob-account-name", "a", "--blob-account-key", "a2V5", "--quota-bytes", "-1"}, 1, "--quota-bytes -1"},
		{"token no repo", []string{"token", "--secret-file", secret, "--write", "refs/heads/main"}, 1, "--repo"},
		{"token no refs", []string{"token", "--secret-file", secret, "--repo", "o/r"}, 1, "--write REF"},
		{"token short ref", []string{"token", "--secret-file", secret, "--repo", "o/r", "--write", "main"}, 1, `ref "main" must be a full ref`},
		{"token bad repo", []string{"token", "--secret-file", secret, "--repo", "o", "--write", "refs/heads/main"}, 1, `repository "o" is not owner/name`},
		{"token short secret", []string{"token", "--secret-file", short, "--repo", "o/r", "--write", "refs/heads/main"}, 1, "--secret-file: secret is 3 bytes"},
		{"token missing secret", []string{"token", "--secret-file", filepath.Join(t.TempDir(), "nope"), "--repo", "o/r", "--write", "refs/heads/main"}, 1, "--secret-file:"},
		{"token stray arg", []string{"token", "--secret-file", secret, "--repo", "o/r", "x"}, 2, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, tt.want)
			}
		})
	}
}

// TestTokenVerifies mints a token with the command and presents it to an
// emulator that shares the secret file.
func TestTokenVerifies(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	secret, err := readOrCreateSecret(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"token", "--secret-file", secretFile, "--repo", "o/r", "--write", "refs/pull/1/merge", "--read", "refs/heads/main", "--ttl", "1h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	emu, err := emulator.New(emulator.Config{Secret: secret, Blobs: emulator.NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]int{strings.TrimSpace(stdout.String()): 200, "x" + strings.TrimSpace(stdout.String()): 401} {
		req := httptest.NewRequest("POST", "/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL", strings.NewReader(`{"key":"k","version":"v"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		emu.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Fatalf("status %d, want %d: %s", rec.Code, want, rec.Body)
		}
	}
	// The secret file written by serve is reused, not replaced.
	again, err := readOrCreateSecret(secretFile)
	if err != nil || !bytes.Equal(again, secret) {
		t.Fatalf("secret changed: %v", err)
	}
	if fi, _ := os.Stat(secretFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v", fi.Mode())
	}
}
