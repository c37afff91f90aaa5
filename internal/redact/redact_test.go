package redact

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

const sas = "sv=2023-11-03&se=2030-01-01T00%3A00%3A00Z&sr=b&sp=racw&sig=AbCdEf%2Bghij%3D"

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://127.0.0.1:10000/devstoreaccount1/c/blob?" + sas, "http://127.0.0.1:10000/devstoreaccount1/c/blob?***"},
		{"https://host/path", "https://host/path"},
		{"https://user:pass@host/p#frag", "https://user:xxxxx@host/p"},
		{"https://host/p?", "https://host/p?***"},
		{"://bad url?sig=abc", "://bad url?***"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := URL(tt.in); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJhYyI6IltdIn0.c2lnbmF0dXJl"
	tests := []struct {
		name, in string
		secrets  []string
		mustNot  []string
		must     []string
	}{
		{"url in error", `Put "http://127.0.0.1:10000/a/b?` + sas + `": connection refused`, nil,
			[]string{"sig=", "AbCdEf"}, []string{"http://127.0.0.1:10000/a/b?***", "connection refused"}},
		{"detached params", "AuthenticationFailed: sp=racw&sig=AbCdEf%2B", nil, []string{"AbCdEf"}, []string{"sig=***"}},
		{"bearer", "Authorization: Bearer abcdefghijklmnop", nil, []string{"abcdefghijklmnop"}, []string{"Bearer ***"}},
		{"jwt", "token " + jwt + " rejected", nil, []string{jwt, "c2lnbmF0dXJl"}, []string{"rejected"}},
		{"explicit secret", "key s3cr3t-value leaked", []string{"s3cr3t-value", "", "ab"}, []string{"s3cr3t-value"}, []string{"key *** leaked"}},
		{"nested secrets", "AAAABBBB", []string{"AAAA", "AAAABBBB"}, []string{"A", "B"}, []string{"***"}},
		{"plain text kept", "use=1 cause=2", nil, nil, []string{"use=1 cause=2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := String(tt.in, tt.secrets...)
			for _, s := range tt.mustNot {
				if strings.Contains(got, s) {
					t.Errorf("String() = %q, still contains %q", got, s)
				}
			}
			for _, s := range tt.must {
				if !strings.Contains(got, s) {
					t.Errorf("String() = %q, want it to contain %q", got, s)
				}
			}
		})
	}
}

func TestError(t *testing.T) {
	if Error(nil) != nil {
		t.Fatal("Error(nil) != nil")
	}
	inner := fmt.Errorf("GET http://h/b?%s: %w", sas, context.Canceled)
	err := Error(inner, "topsecret")
	if strings.Contains(err.Error(), "sig=") {
		t.Errorf("Error() = %q, contains sig=", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Error("errors.Is lost the wrapped error")
	}
	// A real net/http error carries the full URL.
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/x?"+sas, nil)
	_, herr := http.DefaultClient.Do(req)
	if herr == nil {
		t.Skip("port 1 answered")
	}
	if got := Error(herr).Error(); strings.Contains(got, "AbCdEf") {
		t.Errorf("redacted net/http error %q still has the signature", got)
	}
}
