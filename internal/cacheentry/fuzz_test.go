package cacheentry

import (
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts survives
// String and Parse unchanged, never leaks a secret through Redacted, and
// still validates after WithDefaults.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"user/app:cache",
		"type=registry,ref=ghcr.io/o/app:main,mode=max,compression=zstd,compression-level=3",
		`type=s3,bucket=b,region=r,"name=a,b"`,
		"type=gha,token=abc,url=https://x/?sig=1",
		"type=inline",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in string, export bool) {
		dir := Import
		if export {
			dir = Export
		}
		e, err := Parse(in, dir)
		if err != nil {
			return
		}
		s := e.String()
		again, err := Parse(s, dir)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but Parse(String() = %q): %v", in, s, err)
		}
		if !again.Equal(e) {
			t.Fatalf("round trip changed %#v to %#v via %q", e, again, s)
		}
		red := e.Redacted()
		for k, v := range e.Attrs {
			if IsSecretKey(k) && !strings.Contains(red, k+"=***") {
				t.Fatalf("Redacted() %q does not mask %s", red, k)
			}
			if u := strings.Index(v, "?"); u >= 0 && strings.Contains(v, "://") && len(v)-u > 8 && strings.Contains(red, v[u:]) {
				t.Fatalf("Redacted() %q keeps the query of %s", red, k)
			}
		}
		if err := WithDefaults(e, dir).Validate(dir); err != nil {
			t.Fatalf("WithDefaults(%#v) does not validate: %v", e, err)
		}
	})
}
