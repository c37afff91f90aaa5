package explain

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// secretName matches build-arg names that usually carry credentials.
var secretName = regexp.MustCompile(`(?i)(token|secret|passw|pwd|credential|auth|api_?key|private|access_?key|_key$|^key$|cookie|session)`)

// tokenPrefix matches well-known credential formats.
var tokenPrefix = regexp.MustCompile(`^(gh[pousr]_|github_pat_|glpat-|xox[abpr]-|AKIA|ASIA|sk-|eyJ|npm_|pypi-|AIza)`)

// SecretLike reports whether a build-arg looks like it carries a secret:
// by its name, by a known token format, or by being a long random-looking
// string. A commit SHA (40 hex digits) is not a secret, and is the most
// common cause of a build-arg miss, so it stays readable.
func SecretLike(name, value string) bool {
	if secretName.MatchString(name) {
		return true
	}
	if tokenPrefix.MatchString(value) {
		return true
	}
	if isHex(value) || len(value) < 24 || strings.ContainsAny(value, " /:.") {
		return false
	}
	var lower, upper, digit bool
	for _, c := range value {
		switch {
		case unicode.IsLower(c):
			lower = true
		case unicode.IsUpper(c):
			upper = true
		case unicode.IsDigit(c):
			digit = true
		}
	}
	return lower && upper && digit
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// hashArg is the short hash a record keeps of a build-arg value: enough to
// tell a change, not to read it back.
func hashArg(salt, name, value string) string {
	h := sha256.Sum256([]byte("bkcache-build-arg\x00" + salt + "\x00" + name + "\x00" + value))
	return hex.EncodeToString(h[:8])
}

// Mask replaces each secret in s with "***", longest first.
func Mask(s string, secrets []string) string {
	ss := slices.Clone(secrets)
	slices.SortFunc(ss, func(a, b string) int { return len(b) - len(a) })
	for _, sec := range ss {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}
