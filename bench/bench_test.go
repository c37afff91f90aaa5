package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want stats
	}{
		{"empty", nil, stats{}},
		{"odd", []float64{3, 1, 2}, stats{n: 3, median: 2, min: 1, max: 3}},
		{"even", []float64{4, 1, 3, 2}, stats{n: 4, median: 2.5, min: 1, max: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarize(tc.in); got != tc.want {
				t.Errorf("summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestPlanEntries(t *testing.T) {
	out := strings.Join([]string{
		"== bkcache plan",
		"cache-from:",
		"  type=registry,ref=r/x:s_feat",
		"  type=registry,ref=r/x:s_main",
		"cache-to:",
		"  type=registry,ignore-error=true,mode=max,ref=r/x:s_feat",
		"cache-scope: s_feat",
		"cache-from:",
		"  type=ignored",
	}, "\n")
	from, to := planEntries(out)
	if len(from) != 2 || from[1] != "type=registry,ref=r/x:s_main" {
		t.Errorf("from = %q", from)
	}
	if len(to) != 1 || to[0] != "type=registry,ignore-error=true,mode=max,ref=r/x:s_feat" {
		t.Errorf("to = %q", to)
	}
}

func TestHandWrittenMatchesPlanShape(t *testing.T) {
	h := &harness{id: "r1", work: "/w", env: env{registry: "127.0.0.1:5001", s3Bucket: "b", s3Region: "us-east-1",
		s3Endpoint: "http://127.0.0.1:7070", s3Access: "AK", s3Secret: "SK", ghaURL: "http://127.0.0.1:7071/"}}
	tests := []struct {
		backend  string
		imp, exp string
	}{
		{"registry", "type=registry,ref=127.0.0.1:5001/bkcache-bench/r1:id_main",
			"type=registry,ignore-error=true,mode=max,ref=127.0.0.1:5001/bkcache-bench/r1:id_main"},
		{"local", "type=local,src=/w/local/id/id_main", "type=local,dest=/w/local/id/id_main,ignore-error=true,mode=max"},
		{"s3", "type=s3,access_key_id=***,bucket=b,endpoint_url=http://127.0.0.1:7070,name=id_main,prefix=bkcache-bench/id/,region=us-east-1,secret_access_key=***,use_path_style=true",
			"type=s3,access_key_id=***,bucket=b,endpoint_url=http://127.0.0.1:7070,ignore-error=true,mode=max,name=id_main,prefix=bkcache-bench/id/,region=us-east-1,secret_access_key=***,use_path_style=true"},
		{"gha", "type=gha,scope=id", "type=gha,ignore-error=true,mode=max,scope=id"},
	}
	for _, tc := range tests {
		t.Run(tc.backend, func(t *testing.T) {
			imp, exp := h.handWritten(store{backend: tc.backend, id: "id"}, "TOKEN")
			if got := comparable(imp); got != tc.imp {
				t.Errorf("import = %s, want %s", got, tc.imp)
			}
			if got := comparable(exp); got != tc.exp {
				t.Errorf("export = %s, want %s", got, tc.exp)
			}
			if tc.backend == "gha" && !strings.Contains(imp, "token=TOKEN") {
				t.Errorf("gha import lacks the runtime token: %s", imp)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	if _, err := parseFlags([]string{"-backends", "registry,ftp"}); err == nil || !strings.Contains(err.Error(), `unknown "ftp"`) {
		t.Errorf("unknown backend: err = %v", err)
	}
	if _, err := parseFlags([]string{"-runs", "0"}); err == nil {
		t.Error("-runs 0 accepted")
	}
	for _, tc := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"-scenarios", "warm,warm-later"}, "warm-samerepo, warm-nooutput"},
		{[]string{"-builder", "kubernetes"}, "allowed: local, docker-container, bridge"},
		{[]string{"-builder", "bridge", "-backends", "registry,gha-stock"}, "-backends gha-stock"},
		{[]string{"-builder", "bridge", "-backends", "gha", "-compression-backends", "s3"}, "-backends s3"},
	} {
		if _, err := parseFlags(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q): err = %v, want one naming %q", tc.args, err, tc.want)
		}
	}
	if o, err := parseFlags([]string{"-builder", "bridge", "-backends", "registry,local,gha,gha-endpoint", "-scenarios", "warm-nooutput"}); err != nil || o.builder != "bridge" || !o.anyWarm() || o.has("warm") {
		t.Errorf("bridge builder with reachable backends: %+v, %v", o, err)
	}
	o, err := parseFlags([]string{"-backends", "s3, registry,s3", "-scenarios", "warm"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.backends, ",") != "s3,registry" || !o.has("warm") || o.has("cold") {
		t.Errorf("parsed %+v", o)
	}
}

// The build record's line is the one bkcache's cli prints
// (internal/buildjob/explain.go); a change there must show here.
func TestRecordLine(t *testing.T) {
	for _, tc := range []struct {
		stderr string
		want   string
	}{
		{"x\nbuild record saved to local /c/buildkit_main (2.062KiB); 1 context files hashed (269 reused); 4ms after the build\ny\n", "4ms"},
		{"build record not saved: this build exports no cache to a store that keeps records; 0 context files hashed (0 reused); 1.25s after the build\n", "1.25s"},
		{"cache: 9 of 9 steps cached\n", ""},
	} {
		got := ""
		if m := recordLine.FindStringSubmatch(tc.stderr); m != nil {
			got = m[1]
		}
		if got != tc.want {
			t.Errorf("recordLine in %q = %q, want %q", tc.stderr, got, tc.want)
		}
	}
}
