package buildkit

import (
	"testing"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestManifestSize(t *testing.T) {
	top := ocispecs.Descriptor{Digest: "sha256:aa", Size: 100}
	for _, tc := range []struct {
		name string
		body string
		want int64
	}{
		{"cache index", `{"manifests":[{"digest":"sha256:1","size":10},{"digest":"sha256:2","size":20}]}`, 130},
		{"image manifest", `{"config":{"digest":"sha256:c","size":5},"layers":[{"digest":"sha256:1","size":10}]}`, 115},
		{"a blob listed twice counts once", `{"manifests":[{"digest":"sha256:1","size":10},{"digest":"sha256:1","size":10}]}`, 110},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := manifestSize(top, []byte(tc.body))
			if err != nil || got != tc.want {
				t.Errorf("manifestSize = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"not json", `{"layers":[{"digest":"sha256:1","size":-10}]}`} {
		if _, err := manifestSize(top, []byte(bad)); err == nil {
			t.Errorf("manifest %s has a size", bad)
		}
	}
}

// FuzzManifestSize: whatever a store returns, manifestSize answers without
// panicking, and a size it gives includes the manifest itself.
func FuzzManifestSize(f *testing.F) {
	f.Add([]byte(`{"manifests":[{"digest":"sha256:1","size":10}]}`), int64(3))
	f.Add([]byte(`{"layers":[{"size":-5}],"config":null}`), int64(0))
	f.Add([]byte(`[]`), int64(1))
	f.Add([]byte(`{"manifests":[{"digest":"sha256:1","size":9223372036854775807}]}`), int64(1))
	f.Fuzz(func(t *testing.T, body []byte, topSize int64) {
		size, err := manifestSize(ocispecs.Descriptor{Size: topSize}, body)
		if err == nil && (size < topSize || size < 0) {
			t.Fatalf("size %d below the manifest's own %d", size, topSize)
		}
	})
}
