package ghacache

import (
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "soon", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if d, _ := retryAfter(s, now); d < 0 {
			t.Errorf("retryAfter(%q) = %v < 0", s, d)
		}
	})
}

func FuzzParseErrorBody(f *testing.F) {
	for _, s := range []string{
		`{"code":"already_exists","msg":"exists"}`,
		`{"message":"Cache already exists.","typeKey":"ArtifactCacheItemAlreadyExistsException"}`,
		`<?xml version="1.0"?><Error><Code>BlobNotFound</Code><Message>gone
RequestId:1</Message></Error>`,
		"\ufeff{\"message\":\"x\"}", "plain text", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		code, msg := parseErrorBody(b)
		if utf8.Valid(b) && (!utf8.ValidString(code) || !utf8.ValidString(msg)) {
			t.Errorf("parseErrorBody(%q) made invalid UTF-8", b)
		}
	})
}
