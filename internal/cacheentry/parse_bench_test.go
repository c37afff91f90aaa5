package cacheentry

import "testing"

// benchEntries are realistic cache entries, one per backend, as users write
// them in cache-from/cache-to.
var benchEntries = []struct {
	name string
	csv  string
	dir  Direction
}{
	{"registry-short", "ghcr.io/org/app:cache", Import},
	{"registry-export", "type=registry,ref=ghcr.io/org/app:cache,mode=max,compression=zstd,compression-level=3,oci-mediatypes=true,image-manifest=true,ignore-error=true", Export},
	{"local", "type=local,dest=/tmp/cache,mode=max", Export},
	{"gha", "type=gha,scope=app,mode=max,ignore-error=true", Export},
	{"s3", "type=s3,bucket=ci-cache,region=eu-west-1,endpoint_url=https://s3.example.com,use_path_style=true,access_key_id=AKIAEXAMPLE,secret_access_key=secretsecret,name=app_main,mode=max", Export},
	{"azblob", "type=azblob,account_url=https://acct.blob.core.windows.net,secret_access_key=c2VjcmV0,name=app_main,mode=max", Export},
}

func BenchmarkParse(b *testing.B) {
	for _, tc := range benchEntries {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(tc.csv, tc.dir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRedacted covers what every log line about an entry costs.
func BenchmarkRedacted(b *testing.B) {
	e, err := Parse(benchEntries[4].csv, Export)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Redacted()
	}
}
