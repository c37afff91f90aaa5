package plan

import (
	"testing"

	"github.com/bkcache/bkcache/scope"
)

func BenchmarkExpand(b *testing.B) {
	main := scope.Scope{Key: "main", Ref: "refs/heads/main", Reason: scope.ReasonDefaultBranch, Kind: scope.KindBranch}
	feat := scope.Scope{Key: "feature-a--3f2a9c01", Ref: "refs/heads/feature/a", Reason: scope.ReasonThisBranch, Kind: scope.KindBranch}
	onFeature := scope.Plan{Build: "app", Export: &feat, Imports: []scope.Scope{feat, main}, Trusted: true}
	cases := []struct {
		name  string
		cache []string
		opts  Options
	}{
		{"default-local", nil, Options{DefaultLocalDir: "/home/runner/.cache/bkcache"}},
		{"registry", []string{"type=registry,ref=ghcr.io/org/app-cache,mode=max,compression=zstd"}, Options{}},
		{"three-backends", []string{
			"type=registry,ref=ghcr.io/org/app-cache",
			"type=s3,bucket=ci-cache,region=eu-west-1,access_key_id=AKIAEXAMPLE,secret_access_key=secretsecret",
			"type=gha,mode=max",
		}, Options{GitHubRuntime: true}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			if _, err := Expand(tc.cache, nil, nil, onFeature, tc.opts); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Expand(tc.cache, nil, nil, onFeature, tc.opts)
			}
		})
	}
}
