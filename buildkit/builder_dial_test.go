package buildkit

import (
	"slices"
	"testing"

	"github.com/moby/buildkit/client"
)

func TestDropForDocker(t *testing.T) {
	reg := client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": "r/c:main"}}
	local := client.CacheOptionsEntry{Type: "local", Attrs: map[string]string{"src": "/c"}}
	inline := client.CacheOptionsEntry{Type: "inline", Attrs: map[string]string{}}
	gha := client.CacheOptionsEntry{Type: "gha", Attrs: map[string]string{"scope": "s", "token": "secret-token"}}
	ep := Endpoint{Source: `buildx builder "default" (docker driver)`, Docker: true}
	tests := []struct {
		name                 string
		imports, exports     []client.CacheOptionsEntry
		wantImports, wantExp []string // types kept
		want                 string
	}{
		{name: "inline only", imports: []client.CacheOptionsEntry{reg}, exports: []client.CacheOptionsEntry{inline},
			wantImports: []string{"registry"}, wantExp: []string{"inline"}},
		{name: "registry export dropped, imports kept", imports: []client.CacheOptionsEntry{reg, local}, exports: []client.CacheOptionsEntry{reg, inline},
			wantImports: []string{"registry", "local"}, wantExp: []string{"inline"},
			want: `buildx builder "default" (docker driver) is Docker's own BuildKit without the containerd image store, which cannot use this cache: ` +
				"building without cache export type=registry,ref=r/c:main. To keep the cache, run docker/setup-buildx-action before this step " +
				"(its docker-container builder exports every cache type), or use cache type=inline"},
		{name: "gha import dropped, token redacted", imports: []client.CacheOptionsEntry{gha},
			want: `buildx builder "default" (docker driver) is Docker's own BuildKit without the containerd image store, which cannot use this cache: ` +
				"building without cache import type=gha,scope=s,token=***. To keep the cache, run docker/setup-buildx-action before this step " +
				"(its docker-container builder exports every cache type), or use cache type=inline"},
	}
	types := func(es []client.CacheOptionsEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Type)
		}
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := Request{Imports: tt.imports, Exports: tt.exports}
			got := dropForDocker(&req, ep)
			if got != tt.want {
				t.Errorf("warning = %q\nwant      %q", got, tt.want)
			}
			if !slices.Equal(types(req.Imports), tt.wantImports) || !slices.Equal(types(req.Exports), tt.wantExp) {
				t.Errorf("kept imports %q exports %q, want %q and %q", types(req.Imports), types(req.Exports), tt.wantImports, tt.wantExp)
			}
		})
	}
}
