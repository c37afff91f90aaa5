package buildkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/testenv"
	"github.com/moby/buildkit/client"
)

// TestE2EImportMissOrFailure: an import with nothing at its location yet
// (the first build of a branch) is a miss, reported in Result.Misses and
// not as a warning; an import the store refuses is a warning. BuildKit
// reports nothing at all for missing s3, azblob and gha names, so neither
// do we; a local directory without index.json bkcache finds itself. Each
// case is one real build with one import; the vertex errors it logs are
// the messages isImportMiss is tested with.
func TestE2EImportMissOrFailure(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "s3", "azure")
	addr := testenv.NewBuildkitd(t)
	id := testenv.RandomHex(6)
	ctxDir := writeContext(t, fmt.Sprintf("FROM %s\nRUN echo %s > /id\n", env.BaseImage, id), map[string]string{})

	emu := testenv.NewGHAEmulator(t, "imports", emulator.Config{})
	gha := httptest.NewServer(emu)
	t.Cleanup(gha.Close)
	token, err := emu.Token(emulator.TokenOptions{Repo: "o/r", Write: "refs/heads/main"})
	if err != nil {
		t.Fatal(err)
	}
	authReg := startAuthRegistry(t, "ci", "pw-"+id)
	tokenReg := startTokenRegistry(t)
	s3 := func(kv ...string) map[string]string {
		a := map[string]string{"bucket": env.S3Bucket, "region": "us-east-1", "endpoint_url": env.S3Endpoint,
			"use_path_style": "true", "access_key_id": env.S3AccessKey, "secret_access_key": env.S3SecretKey, "prefix": id + "/"}
		for i := 0; i+1 < len(kv); i += 2 {
			a[kv[i]] = kv[i+1]
		}
		return a
	}
	azure := func(kv ...string) map[string]string {
		a := map[string]string{"account_url": env.AzureAccountURL, "account_name": env.AzureAccountName,
			"secret_access_key": env.AzureAccountKey, "container": "imports-" + id}
		for i := 0; i+1 < len(kv); i += 2 {
			a[kv[i]] = kv[i+1]
		}
		return a
	}
	emptyDir := t.TempDir()
	wrongKey := "d3JvbmcgYnV0IHdlbGwtZm9ybWVkIGtleSwgZm9yIHRoZSBpbXBvcnQgdGVzdHMhIQ=="

	const (
		miss    = "miss"
		warning = "warning"
		silent  = "silent"
	)
	tests := []struct {
		name  string
		entry client.CacheOptionsEntry
		want  string
	}{
		{"registry tag not pushed", client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": env.Registry + "/imports/" + id + ":buildkit_main"}}, miss},
		{"local empty directory", client.CacheOptionsEntry{Type: "local", Attrs: map[string]string{"src": emptyDir}}, miss}, // bkcache checks for index.json itself (splitLocalMisses)
		{"s3 name not exported", client.CacheOptionsEntry{Type: "s3", Attrs: s3("name", "buildkit_main")}, silent},
		{"azblob name not exported", client.CacheOptionsEntry{Type: "azblob", Attrs: azure("name", "buildkit_main")}, silent},
		{"gha scope not exported", client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{
			"url": gha.URL + "/", "url_v2": gha.URL + "/", "version": "2", "token": token, "scope": "buildkit_" + id}}, silent},
		{"registry needs credentials", client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": authReg + "/private/cache:buildkit_main"}}, warning},
		{"registry refuses like docker hub", client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": tokenReg + "/private/cache:buildkit_main"}}, warning},
		{"s3 wrong key", client.CacheOptionsEntry{Type: "s3", Attrs: s3("name", "buildkit_main", "secret_access_key", "wrong-"+id)}, warning},
		{"azblob wrong key", client.CacheOptionsEntry{Type: "azblob", Attrs: azure("name", "buildkit_main", "secret_access_key", wrongKey)}, warning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			empty := t.TempDir()
			res, err := build(t, addr, Request{Build: BuildOptions{Context: ctxDir}, Imports: []client.CacheOptionsEntry{tt.entry}},
				WithGetenv(dockerConfigEnv(empty)))
			if err != nil {
				t.Fatalf("a cache import must never fail the build: %v", err)
			}
			for _, v := range res.Vertices {
				if strings.HasPrefix(v.Name, importVertexPrefix) {
					t.Logf("vertex %q error: %q", v.Name, v.Error)
				}
			}
			t.Logf("misses %q warnings %q", res.Misses, res.Warnings)
			var warned []string
			for _, w := range res.Warnings {
				if strings.HasPrefix(w, "cache import") {
					warned = append(warned, w)
				}
			}
			got := silent
			switch {
			case len(res.Misses) == 1 && len(warned) == 0:
				got = miss
			case len(res.Misses) == 0 && len(warned) == 1:
				got = warning
			case len(res.Misses) != 0 || len(warned) != 0:
				got = fmt.Sprintf("misses %q and warnings %q", res.Misses, warned)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// startTokenRegistry starts a docker-registry with token auth, as Docker
// Hub and ghcr.io use, behind a token server that hands anyone a token
// granting nothing: a pull is refused with insufficient_scope, which
// BuildKit words "pull access denied, repository does not exist or may
// require authorization". It returns the registry's host:port.
func startTokenRegistry(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bkcache-test-token"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "token.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	const issuer, service = "bkcache-test-issuer", "bkcache-test-registry"
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
			"iss": issuer, "sub": "", "aud": service, "jti": testenv.RandomHex(6),
			"iat": time.Now().Unix(), "nbf": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(),
			"access": []any{}, // anonymous: no repository may be pulled
		})
		tok.Header["x5c"] = []string{base64.StdEncoding.EncodeToString(der)}
		signed, err := tok.SignedString(key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"token": signed, "access_token": signed})
	}))
	t.Cleanup(tokens.Close)
	return startRegistry(t, fmt.Sprintf("{token: {realm: %q, service: %s, issuer: %s, rootcertbundle: %s}}",
		tokens.URL+"/token", service, issuer, bundle))
}
