package ghacache

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// How BuildKit's gha cache names its entries (moby/buildkit v0.34.2
// cache/remotecache/gha/gha.go and tonistiigi/go-actions-cache):
//   - layer blobs: "buildkit-blob-1-<digest>" (a "-sig" suffix for signatures);
//   - the cache index of scope S, written by a token whose writable ref is
//     R: "index-S-1-<first 8 hex of sha256(R)>" ("-sig" appended when
//     signing or verification is on). It is saved with SaveMutable, i.e. as
//     "<index key>#<n>" with n counting up on every export, and read by
//     looking up the prefix "<index key>#" (the newest wins). Every export
//     therefore leaves the previous index entries behind: they are the
//     "superseded" entries PruneSuperseded deletes.
//   - every entry uses one version: hex(sha256("|go-actionscache-1.0"))
//     (go-actions-cache version(); note: no dash in "actionscache").
const (
	buildkitKeyVersion = "1"
	buildkitBlobPrefix = "buildkit-blob-" + buildkitKeyVersion + "-"
)

// BuildKitVersion is the version string BuildKit's gha backend saves and
// looks up every entry with.
func BuildKitVersion() string {
	h := sha256.Sum256([]byte("|go-actionscache-1.0"))
	return hex.EncodeToString(h[:])
}

// IndexKey is the key (without the "#n" counter) of BuildKit's cache index
// for gha scope name scope (the `scope=` attribute, default "buildkit")
// exported by a job whose writable cache ref is ref (e.g. "refs/heads/main",
// "refs/pull/42/merge"). Unsigned caches only.
func IndexKey(scope, ref string) string {
	h := sha256.Sum256([]byte(ref))
	return "index-" + scope + "-" + buildkitKeyVersion + "-" + hex.EncodeToString(h[:])[:8]
}

// BlobKey is the key BuildKit stores a layer blob under.
func BlobKey(digest string) string { return buildkitBlobPrefix + digest }

// indexCounter returns n when key is exactly indexKey+"#"+n.
func indexCounter(key, indexKey string) (int, bool) {
	rest, ok := strings.CutPrefix(key, indexKey+"#")
	if !ok || rest == "" {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0
}
