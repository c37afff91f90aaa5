package config

import (
	"reflect"
	"strings"
	"testing"
)

func inputs(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse(inputs(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Context != "." || c.Progress != "auto" || c.Push || c.DryRun || len(c.Cache) != 0 ||
		!reflect.DeepEqual(c.CacheMounts, []string{"auto"}) || c.CacheMountsMaxSize != DefaultCacheMountsMaxSize {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestParse(t *testing.T) {
	c, err := Parse(inputs(map[string]string{
		"context":               "app",
		"tags":                  "ghcr.io/o/app:latest,ghcr.io/o/app:1.0\nghcr.io/o/app:edge",
		"build-args":            "A=1\nB=x=y\n",
		"labels":                "org.opencontainers.image.title=app",
		"platforms":             "linux/amd64, linux/arm64",
		"push":                  "True",
		"cache":                 "# comment\ntype=registry,ref=ghcr.io/o/app-cache\n\ntype=s3,bucket=b,region=r\n",
		"cache-scope":           "app",
		"dry-run":               "true",
		"progress":              "plain",
		"secrets":               "id=a,src=/x",
		"cache-mounts":          "gomod, /root/.cache/go-build",
		"cache-mounts-max-size": "500MB",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Context:    "app",
		Tags:       []string{"ghcr.io/o/app:latest", "ghcr.io/o/app:1.0", "ghcr.io/o/app:edge"},
		BuildArgs:  map[string]string{"A": "1", "B": "x=y"},
		Labels:     map[string]string{"org.opencontainers.image.title": "app"},
		Platforms:  []string{"linux/amd64", "linux/arm64"},
		Push:       true,
		Cache:      []string{"type=registry,ref=ghcr.io/o/app-cache", "type=s3,bucket=b,region=r"},
		CacheScope: "app",
		DryRun:     true,
		Progress:   "plain",
		Secrets:    []Secret{{ID: "a", File: "/x"}},

		CacheMounts:        []string{"gomod", "/root/.cache/go-build"},
		CacheMountsMaxSize: 500 << 20,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     map[string]string
		substr []string
	}{
		{"bad bool", map[string]string{"push": "yes"}, []string{`input "push"`, `"yes"`, "allowed: true, false"}},
		{"bad progress", map[string]string{"progress": "fancy"}, []string{`input "progress"`, "auto, plain, rawjson, quiet"}},
		{"bad build-arg", map[string]string{"build-args": "A=1\n\nNOEQUALS"}, []string{`input "build-args" line 3: want KEY=VALUE; the line has no '='`}},
		{"build-arg without a key", map[string]string{"build-args": "=x"}, []string{`input "build-args" line 1: want KEY=VALUE; the key is empty`}},
		{"bad label", map[string]string{"labels": "org.opencontainers.image.title"}, []string{`input "labels" line 1: want KEY=VALUE`}},
		{"cleanup without token", map[string]string{"cache-cleanup": "true"}, []string{`"cache-cleanup"`, `"github-token"`}},
		{"push without tags", map[string]string{"push": "true"}, []string{`"push"`, `"tags"`}},
		{"multiline scope", map[string]string{"cache-scope": "a\nb"}, []string{`input "cache-scope"`, "single line"}},
		{"bad csv", map[string]string{"tags": `"unterminated`}, []string{`input "tags"`}},
		{"none with ids", map[string]string{"cache-mounts": "none\ngomod"}, []string{`input "cache-mounts"`, "allowed: auto, none, or a list"}},
		{"bad size", map[string]string{"cache-mounts-max-size": "lots"}, []string{`input "cache-mounts-max-size"`, `"lots"`, "500MB"}},
		{"zero size", map[string]string{"cache-mounts-max-size": "0"}, []string{`input "cache-mounts-max-size"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(inputs(tc.in))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, s := range tc.substr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// TestKeyValueErrorsHideTheText: a build arg pasted without its key is
// often a token, and nothing masks it; the error names the line only.
func TestKeyValueErrorsHideTheText(t *testing.T) {
	const token = "ghp_UnmaskedTokenPastedAlone"
	for _, in := range []string{"build-args", "labels"} {
		for _, text := range []string{token, "=" + token} {
			_, err := Parse(inputs(map[string]string{in: "A=1\n" + text}))
			if err == nil || !strings.Contains(err.Error(), `line 2`) || strings.Contains(err.Error(), token) {
				t.Errorf("%s %q: error %v: want one naming line 2, never the text", in, text, err)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("tags", "a,b\nc")
	f.Add("push", "TRUE")
	f.Add("build-args", "A=1\n=2")
	f.Add("cache", "type=gha\n#x")
	f.Add("tags", `"a,b",c`)
	f.Fuzz(func(t *testing.T, name, value string) {
		c, err := Parse(inputs(map[string]string{name: value}))
		if err != nil {
			if !strings.Contains(err.Error(), "input ") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		for _, tag := range c.Tags {
			if tag == "" || strings.ContainsAny(tag, "\n") {
				t.Fatalf("bad tag %q", tag)
			}
		}
	})
}
