// Package redact removes secrets from text before it reaches a log, an
// output, a summary or an error message: signed URLs (Azure SAS, S3
// presigned), bearer tokens, JWTs and any caller-supplied secret value.
//
// It is pure (stdlib only) so every layer can use it.
package redact

import (
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// Mask replaces whatever was removed.
const Mask = "***"

// minSecretLen keeps very short "secrets" (an empty password, "1") from
// shredding unrelated text; real tokens and keys are far longer.
const minSecretLen = 4

var (
	urlRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>` + "`" + `]+`)
	// Signed-URL parameters that may appear detached from a URL, e.g. a
	// query string echoed in a server's error body.
	paramRE = regexp.MustCompile(`(?i)\b(sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|access_token|token|sas|code)=[^&\s"'<>]+`)
	authRE  = regexp.MustCompile(`(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}`)
	jwtRE   = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)
)

// URL returns raw without its query string, fragment and password: the
// parts that carry a signature or credential. Scheme, host and path stay so
// that the message remains useful ("PUT http://127.0.0.1:10000/acct/blob?…").
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Unparseable: cut at the first '?' or '#', and drop userinfo crudely.
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			raw = raw[:i] + "?" + Mask
		}
		if i := strings.Index(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				raw = raw[:j+3] + Mask + raw[i:]
			}
		}
		return raw
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.RawQuery != "" || u.ForceQuery
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	s := u.String()
	if q {
		s += "?" + Mask
	}
	return s
}

// String returns s with every URL passed through URL, signed-URL
// parameters, bearer credentials and JWTs masked, and each of secrets
// (longer than three characters) replaced by Mask.
func String(s string, secrets ...string) string {
	// Longest first, so a secret that contains another is masked whole.
	sorted := append([]string(nil), secrets...)
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
	for _, sec := range sorted {
		if len(sec) >= minSecretLen {
			s = strings.ReplaceAll(s, sec, Mask)
		}
	}
	s = urlRE.ReplaceAllStringFunc(s, URL)
	s = paramRE.ReplaceAllStringFunc(s, func(m string) string {
		k, _, _ := strings.Cut(m, "=")
		return k + "=" + Mask
	})
	s = authRE.ReplaceAllStringFunc(s, func(m string) string {
		k, _, _ := strings.Cut(m, " ")
		return k + " " + Mask
	})
	return jwtRE.ReplaceAllString(s, Mask)
}

// Error wraps err so that its message is redacted with String. errors.Is
// and errors.As still see the original chain (needed for context.Canceled
// and typed errors); code that unwraps and prints an inner error must
// redact it again.
func Error(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	if r, ok := err.(*redacted); ok && len(secrets) == 0 {
		return r
	}
	return &redacted{err: err, msg: String(err.Error(), secrets...)}
}

type redacted struct {
	err error
	msg string
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
