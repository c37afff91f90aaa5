package scope

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"testing/quick"
)

var (
	// tagRE is the OCI distribution spec's tag grammar.
	tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// keyRE is the stricter form keys promise: lower case, starts and ends
	// with a letter or digit (Azure rejects names ending in '.'), no '_'.
	keyRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,62}[a-z0-9])?$`)
)

var testBuild = buildName("my-build", "linux/arm64")

func checkKey(t *testing.T, what, key string) {
	if !keyRE.MatchString(key) {
		t.Errorf("%s: key %q does not match %s", what, key, keyRE)
	}
	if name := (Scope{Key: key}).Name(testBuild); !tagRE.MatchString(name) {
		t.Errorf("%s: name %q is not a valid tag", what, name)
	}
}

// validKey is keyRE without the regexp engine, for the hot property loop
// (TestValidKeyMatchesRegexp keeps the two in step).
func validKey(key string) bool {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	for i := 0; i < len(key); i++ {
		if c := key[i]; !alnum(c) && c != '.' && c != '-' {
			return false
		}
	}
	return alnum(key[0]) && alnum(key[len(key)-1]) && len(testBuild)+1+len(key) <= 128
}

func TestValidKeyMatchesRegexp(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for range 5000 {
		for _, k := range []string{genRef(r), sanitize(genRef(r)), branchKey(genRef(r))} {
			if validKey(k) != keyRE.MatchString(k) {
				t.Fatalf("validKey(%q) = %v, regexp says %v", k, validKey(k), keyRE.MatchString(k))
			}
		}
	}
}

func TestKeys(t *testing.T) {
	long := strings.Repeat("very-long-branch-name-", 12)
	tests := []struct {
		name string
		got  string
		want string // "…--" means: this prefix then "--" and 8 hex digits
	}{
		{"clean branch", branchKey("main"), "main"},
		{"clean dashed branch", branchKey("feature-a"), "feature-a"},
		{"slash branch", branchKey("feature/a"), "feature-a--"},
		{"upper case", branchKey("Main"), "main--"},
		{"underscore", branchKey("my_feature"), "my-feature--"},
		{"double dash", branchKey("a--b"), "a-b--"},
		{"leading dot", branchKey(".hidden"), "hidden--"},
		{"trailing dot", branchKey("v1."), "v1--"},
		{"only unicode", branchKey("日本語"), "x--"},
		{"emoji", branchKey("fix-🐛"), "fix--"},
		{"branch pr-42 is not PR 42", branchKey("pr-42"), "pr-42--"},
		{"branch tag-v1 is not tag v1", branchKey("tag-v1"), "tag-v1--"},
		{"branch mq-main is not the merge queue", branchKey("mq-main"), "mq-main--"},
		{"branch named like a PR key prefix only", branchKey("pr"), "pr"},
		{"long branch", branchKey(long), strings.TrimRight(long[:MaxKeyLen-10], "-") + "--"},
		{"PR", prKey(42), "pr-42"},
		{"tag", tagKey("v1.2.3"), "tag-v1.2.3"},
		{"tag with slash", tagKey("release/1.0"), "tag-release-1.0--"},
		{"merge queue", mergeQueueKey("main"), "mq-main"},
		{"merge queue of slash branch", mergeQueueKey("release/2.x"), "mq-release-2.x--"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkKey(t, tt.name, tt.got)
			if prefix, hashed := strings.CutSuffix(tt.want, "--"); hashed {
				if !regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `--[0-9a-f]{8}$`).MatchString(tt.got) {
					t.Errorf("key = %q, want %q + 8 hex digits", tt.got, tt.want)
				}
			} else if tt.got != tt.want {
				t.Errorf("key = %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// genRef returns a random ref name built from pieces that stress the
// sanitiser: case, separators, unicode, runs of '-', reserved prefixes and
// very long names.
func genRef(r *rand.Rand) string {
	pieces := []string{"a", "b", "Z", "0", "9", "-", "--", "_", ".", "/", " ", "ü", "日本", "🐛", "\x00", "\xff",
		"pr-", "tag-", "mq-", "main", "feature", "release", "v1.2", "x"}
	n := 1 + r.IntN(8)
	if r.IntN(20) == 0 {
		n = 40 + r.IntN(60) // very long
	}
	var b strings.Builder
	for range n {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// TestKeysNeverCollide is the property: distinct refs, of any kind, never
// map to the same key, and every key is a valid name. Besides random refs it
// adds, adversarially, branches and tags literally named after every key
// produced so far.
func TestKeysNeverCollide(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0x5c09e))
			owner := map[string]string{} // key → the ref that produced it
			add := func(ref, key string) {
				if !validKey(key) {
					t.Fatalf("%q: invalid key %q", ref, key)
				}
				if prev, ok := owner[key]; ok && prev != ref {
					t.Fatalf("%q and %q both map to key %q", prev, ref, key)
				}
				owner[key] = ref
			}
			for i := range 3000 {
				name := genRef(r)
				add("refs/heads/"+name, branchKey(name))
				add("refs/tags/"+name, tagKey(name))
				add("merge-queue:"+name, mergeQueueKey(name))
				add(fmt.Sprintf("refs/pull/%d/merge", i+1), prKey(int64(i+1)))
			}
			keys := make([]string, 0, len(owner))
			for k := range owner {
				keys = append(keys, k)
			}
			for _, k := range keys {
				add("refs/heads/"+k, branchKey(k))
				add("refs/tags/"+k, tagKey(k))
				add("merge-queue:"+k, mergeQueueKey(k))
			}
		})
	}
}

func TestBranchKeysQuick(t *testing.T) {
	distinct := func(a, b string) bool {
		return a == b || branchKey(a) != branchKey(b)
	}
	if err := quick.Check(distinct, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
	valid := func(a string) bool { return keyRE.MatchString(branchKey(a)) && keyRE.MatchString(tagKey(a)) }
	if err := quick.Check(valid, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
}

func TestNameLength(t *testing.T) {
	build := buildName(strings.Repeat("B", 300), "linux/arm64/v8")
	if len(build) > MaxBuildLen {
		t.Fatalf("build %q is %d bytes, max %d", build, len(build), MaxBuildLen)
	}
	name := Scope{Key: branchKey(strings.Repeat("é/", 300))}.Name(build)
	if len(name) > 128 || !tagRE.MatchString(name) {
		t.Fatalf("name %q (%d bytes) is not a valid tag", name, len(name))
	}
}
