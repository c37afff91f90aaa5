package main

import (
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/internal/cachemount"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-suites", "node", "-configs", "gha, gha-stock,gha", "-scenarios", "pr", "-delays", "0,10,10", "-node-image", "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.configs, ","); got != "gha,gha-stock" {
		t.Errorf("configs = %s", got)
	}
	if got := strings.Join(o.scenarios, ","); got != "cold,pr" {
		t.Errorf("scenarios = %s (cold always runs)", got)
	}
	if len(o.delays) != 2 || o.delays[1] != 10 {
		t.Errorf("delays = %v", o.delays)
	}
	for _, bad := range [][]string{
		{"-configs", "ftp", "-node-image", "x", "-go-image", "x"},
		{"-delays", "-3", "-node-image", "x", "-go-image", "x"},
		{"-runs", "0"},
		{"-runs", "3,self=0"},
		{"-runs", "go=2"},
		{"-runs", "three"},
		{"-suites", "self", "-go-image", ""},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

// The mount summary bkcache prints after a build (internal/buildjob/mounts.go).
func TestTimedParsesMountSummary(t *testing.T) {
	stderr := strings.Join([]string{
		"cache mount /root/.npm: nothing saved yet",
		"#9 [deps 4/4] RUN npm ci",
		"cache mount /root/.npm: restored from gha scope x (12 MiB, 300 files) in 1.25s; saved to gha scope x (13 MiB, 310 files) in 450ms",
		"cache mount /go/pkg/mod: kept the builder's own contents (3 files); not saved: every step that uses it was cached, so it is unchanged",
		"cache mount /root/.cache/go-build: restored from local x (1 GiB, 9 files) in 1m2.5s; not saved: it is empty",
	}, "\n")
	var secs float64
	var n int
	for _, m := range mountLine.FindAllStringSubmatch(stderr, -1) {
		n++
		for _, d := range mountTime.FindAllStringSubmatch(m[2], -1) {
			secs += mustDuration(t, d[1])
		}
	}
	if n != 3 {
		t.Errorf("found %d summary lines, want 3", n)
	}
	if want := 1.25 + 0.45 + 62.5; secs < want-1e-9 || secs > want+1e-9 {
		t.Errorf("mount time = %v s, want %v", secs, want)
	}
}

func TestTargets(t *testing.T) {
	r := &results{Suites: []string{"node"}, Scenarios: []string{"cold", "bump"}, Delays: []int{0}, Samples: []sample{
		{Suite: "node", Config: "gha", Scenario: "bump", Seconds: 10, Hits: 5, Steps: 9},
		{Suite: "node", Config: "gha-stock", Scenario: "bump", Seconds: 30, Hits: 3, Steps: 9},
		{Suite: "node", Config: "gha-stock", Scenario: "bump", Seconds: 99, Err: "failed"},
	}}
	rows := r.targets()
	if len(rows) != 1 || rows[0][2] != "met" || !strings.Contains(rows[0][1], "0.33×") {
		t.Errorf("targets = %q", rows)
	}
	md := r.markdown("")
	if !strings.Contains(md, "Failed builds") || !strings.Contains(md, "| dependency bump |") {
		t.Errorf("report lacks its tables:\n%s", md)
	}
}

func mustDuration(t *testing.T, s string) float64 {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d.Seconds()
}

// The real projects' Dockerfiles have the cache mounts bkcache carries.
func TestDockerfilesCarryTheirMounts(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"../../Dockerfile", []string{"/go/pkg/mod", "/root/.cache/go-build"}},
		{"../testdata/node/Dockerfile", []string{"/root/.npm"}},
	} {
		dt, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		found, err := cachemount.Discover(dt, cachemount.Options{BuildPlatform: "linux/amd64"})
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		var ids []string
		for _, m := range found.Mounts {
			ids = append(ids, m.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, tc.want) || len(found.Skipped) > 0 {
			t.Errorf("%s: mounts %v (skipped %v), want %v", tc.file, ids, found.Skipped, tc.want)
		}
	}
}

func TestParseRuns(t *testing.T) {
	for _, tc := range []struct {
		in   string
		runs int
		self int
	}{
		{"3", 3, 3},
		{"5", 5, 5},
		{"3,self=2", 3, 2},
		{"self=1", 3, 1},
		{"self=2,4", 4, 2},
	} {
		o, err := parseFlags([]string{"-runs", tc.in, "-node-image", "x", "-go-image", "x"})
		if err != nil {
			t.Errorf("-runs %s: %v", tc.in, err)
			continue
		}
		if o.runsOf("node") != tc.runs || o.runsOf("self") != tc.self {
			t.Errorf("-runs %s: node %d, self %d; want %d, %d", tc.in, o.runsOf("node"), o.runsOf("self"), tc.runs, tc.self)
		}
	}
}

// One restore batch serves every mount, so it counts once; the saves count
// as the longest one's (the pack they share plus its upload).
func TestMountSeconds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mounts []string
		want   float64
	}{
		{"none", nil, 0},
		{"planned only", []string{"/go/pkg/mod: restore from gha scope x; save to gha scope x"}, 0},
		{"cold", []string{
			"/go/pkg/mod: nothing saved yet; saved to gha scope x (184.3MiB, 22680 files) in 9.2s",
			"/root/.cache/go-build: nothing saved yet; saved to gha scope x (98.77MiB, 4669 files) in 7.25s",
		}, 9.2},
		{"warm", []string{
			"/go/pkg/mod: restored from gha scope x (184.3MiB, 22680 files) in 10.86s; not saved: every step that uses it was cached, so it is unchanged",
			"/root/.cache/go-build: restored from gha scope x (98.77MiB, 4669 files) in 10.86s; not saved: every step that uses it was cached, so it is unchanged",
		}, 10.86},
		{"pr", []string{
			"/go/pkg/mod: restored from gha scope x (184.3MiB, 22680 files) in 12.98s; saved to gha scope x (184.3MiB, 22680 files) in 9.14s",
			"/root/.cache/go-build: restored from gha scope x (98.77MiB, 4669 files) in 12.98s; saved to gha scope x (99.45MiB, 4696 files) in 7.52s",
		}, 22.12},
		{"kept", []string{"/root/.npm: kept the builder's own contents (3 files); not saved: every step that uses it was cached, so it is unchanged"}, 0},
	} {
		if got := mountSeconds(tc.mounts); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: mountSeconds = %v, want %v", tc.name, got, tc.want)
		}
	}
}
