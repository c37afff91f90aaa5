package plan

import (
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/scope"
)

// FuzzExpand: no input panics; whatever Expand accepts is a set of valid
// entries that survive String/Parse, and its outputs hold no secrets.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{
		"type=registry,ref=ghcr.io/o/c",
		"type=local,dest=/tmp/c",
		"type=gha,token=abcdef",
		"type=s3,bucket=b,region=r,secret_access_key=abcdef",
		"type=azblob,account_url=https://a.blob/?sig=abcdef",
		"type=inline",
		"user/app",
	} {
		f.Add(s, "", uint8(0))
		f.Add(s, "type=gha,scope=x", uint8(3))
	}
	plans := []scope.Plan{pushMain, pushFeat, pr, forkPR, tag}
	f.Fuzz(func(t *testing.T, cacheText, explicit string, which uint8) {
		sp := plans[int(which)%len(plans)]
		opts := Options{GitHubRuntime: which&8 != 0, DefaultLocalDir: "/c", Tags: []string{"ghcr.io/o/app:x"}, HasImageOutput: which&16 != 0}
		var from, to []string
		if which&32 != 0 {
			from = strings.Split(explicit, "\n")
		} else {
			to = strings.Split(explicit, "\n")
		}
		p, err := Expand(strings.Split(cacheText, "\n"), from, to, sp, opts)
		if err != nil {
			return
		}
		if err := cacheentry.ValidateSet(p.Imports, p.Exports, opts.HasImageOutput); err != nil {
			t.Fatalf("accepted plan is invalid: %v", err)
		}
		for dir, es := range map[cacheentry.Direction][]cacheentry.Entry{cacheentry.Import: p.Imports, cacheentry.Export: p.Exports} {
			for _, e := range es {
				again, err := cacheentry.Parse(e.String(), dir)
				if err != nil || !again.Equal(e) {
					t.Fatalf("%s entry %q does not round-trip: %v", dir, e.String(), err)
				}
				r := e.Redacted()
				for k, v := range e.Attrs {
					if cacheentry.IsSecretKey(k) && (!strings.Contains(r, k+"=***") || (!strings.HasPrefix("***", v) && strings.Contains(r, k+"="+v))) {
						t.Fatalf("Redacted() %q shows %s", r, k)
					}
				}
				if d := Display(e); !strings.Contains(p.Describe(), d) {
					t.Fatalf("Describe() lacks %q", d)
				}
			}
		}
		if n := len(p.Imports); n > 0 && strings.Count(p.CacheFrom(), "\n") != n-1 {
			t.Fatalf("CacheFrom has the wrong number of lines: %q", p.CacheFrom())
		}
	})
}
