package redact

import (
	"strings"
	"testing"
)

// A secret handed to String never survives, wherever it sits.
func FuzzString(f *testing.F) {
	f.Add("GET http://h/p?sig=", "s3cr3tvalue", "&x=1")
	f.Add("Bearer ", "abcdefghijkl", "")
	f.Add("", "token", "")
	f.Fuzz(func(t *testing.T, pre, secret, post string) {
		if len(secret) < minSecretLen || strings.Contains(secret, "*") {
			return
		}
		got := String(pre+secret+post, secret)
		if strings.Contains(got, secret) {
			t.Errorf("String(%q, %q) = %q keeps the secret", pre+secret+post, secret, got)
		}
		// A signature is URL-safe text (base64, percent-escapes).
		urlSafe := strings.Trim(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789%-._~+/=") == ""
		if urlSafe && strings.Contains(String("http://h/x?sig="+secret), secret) {
			t.Errorf("URL signature %q survived", secret)
		}
	})
}
