package scope

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

const (
	// MaxKeyLen and MaxBuildLen add up, with the '_' between them, to the
	// 128 characters a registry tag may have.
	MaxKeyLen   = 64
	MaxBuildLen = 63

	hashSep = "--" // never inside a sanitized name, so hashed keys never equal clean ones
	hashLen = 8
	nameSep = "_" // never inside a key or build name, so Name is unambiguous

	// DefaultBuild is the build name when Options.Name is empty.
	DefaultBuild = "buildkit"
)

// Prefixes of the non-branch namespaces. Branch keys that would start with
// one of them are always hashed.
const (
	prPrefix  = "pr-"
	tagPrefix = "tag-"
	mqPrefix  = "mq-"
)

// sanitize maps s onto [a-z0-9.-]: ASCII letters are lower-cased, every other
// rune (including invalid UTF-8) becomes '-', runs of '-' collapse to one, and
// '.' and '-' are trimmed from both ends (keys must start with a letter or
// digit, and Azure rejects blob names ending in '.').
func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	dash := false
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.':
			b.WriteRune(r)
			dash = false
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
			dash = false
		default:
			if !dash {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	return strings.Trim(b.String(), ".-")
}

func shortHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])[:hashLen]
}

// makeKey returns prefix+name when name is already clean and fits in max,
// otherwise prefix + sanitized (and truncated) name + "--" + hash of id.
// id identifies the original ref (kind included), so two refs that sanitize
// alike still differ by their hash.
func makeKey(prefix, name, id string, max int, forceHash bool) string {
	s := sanitize(name)
	if !forceHash && s != "" && s == name && len(prefix)+len(s) <= max {
		return prefix + s
	}
	room := max - len(prefix) - len(hashSep) - hashLen
	if len(s) > room {
		s = strings.TrimRight(s[:room], ".-")
	}
	if s == "" {
		// A name with no ASCII letter or digit: without a placeholder the key
		// would be the bare hash, which a branch could be named literally.
		s = "x"
	}
	return prefix + s + hashSep + shortHash(id)
}

// branchKey is the key of branch (short name, without refs/heads/).
func branchKey(branch string) string {
	s := sanitize(branch)
	reserved := strings.HasPrefix(s, prPrefix) || strings.HasPrefix(s, tagPrefix) || strings.HasPrefix(s, mqPrefix)
	return makeKey("", branch, "refs/heads/"+branch, MaxKeyLen, reserved)
}

// tagKey is the key of tag (short name, without refs/tags/).
func tagKey(tag string) string {
	return makeKey(tagPrefix, tag, "refs/tags/"+tag, MaxKeyLen, false)
}

// prKey is the key of pull request n.
func prKey(n int64) string {
	return prPrefix + strconv.FormatInt(n, 10)
}

// mergeQueueKey is the key shared by all merge groups targeting base.
func mergeQueueKey(base string) string {
	return makeKey(mqPrefix, base, "merge-queue:refs/heads/"+base, MaxKeyLen, false)
}

// buildName turns the user's cache-scope and platform into the build name:
// "buildkit", "app", "app-linux-arm64". Platforms join with '-' ("linux/arm64"
// → "linux-arm64", several separated by ',' likewise) without counting as a
// change; anything else that needed sanitising gets a hash.
func buildName(name, platform string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		name = DefaultBuild
	}
	full := name
	if p := strings.TrimSpace(platform); p != "" {
		p = strings.NewReplacer("/", "-", ",", "-", " ", "").Replace(p)
		full = name + "-" + p
	}
	return makeKey("", full, "build:"+name+"\x00"+platform, MaxBuildLen, false)
}
