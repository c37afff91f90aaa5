package contentstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/bkcache/bkcache/ghacache"
	"github.com/bkcache/bkcache/ghacache/emulator"
)

// failingReaderAt fails every read: a save through it reserves its key
// and never finishes.
type failingReaderAt struct{}

func (failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errors.New("the job died") }

// TestFinalizeNamesOnlyFinishedBlobs: Finalize writes an index only when
// every layer it names is in the cache now. Neither a layer another job
// reserved but never finished ("already exists" on upload) nor one the
// Known set says an import found (evicted since) counts.
func TestFinalizeNamesOnlyFinishedBlobs(t *testing.T) {
	defer func(w []time.Duration) { reservedWait = w }(reservedWait)
	reservedWait = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}
	tests := []struct {
		name  string
		setup func(t *testing.T, s service, layer []byte, known *Known)
	}{
		{"another job's unfinished reservation", func(t *testing.T, s service, layer []byte, _ *Known) {
			// A job that reserved the key and died uploading.
			c := s.client(t, mainRef)
			err := c.Save(context.Background(), ghacache.BlobKey(digest.FromBytes(layer).String()), ghacache.BuildKitVersion(), failingReaderAt{}, int64(len(layer)))
			if err == nil || errors.Is(err, ghacache.ErrAlreadyExists) {
				t.Fatalf("reserving: %v", err)
			}
		}},
		{"a known layer evicted since the import", func(t *testing.T, s service, layer []byte, known *Known) {
			c := s.client(t, mainRef)
			key := ghacache.BlobKey(digest.FromBytes(layer).String())
			if err := c.Save(context.Background(), key, ghacache.BuildKitVersion(), bytes.NewReader(layer), int64(len(layer))); err != nil {
				t.Fatal(err)
			}
			known.Add(digest.FromBytes(layer))
			// Evict it with the fault: one lookup, then it is gone.
			if err := s.emu.SetFaults(emulator.Faults{EvictAfterLookup: key}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.BlobEntry(context.Background(), digest.FromBytes(layer).String()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			services(t, func(t *testing.T, s service) {
				ctx := context.Background()
				layer := randomBytes(t, 5000)
				known := &Known{}
				tt.setup(t, s, layer, known)
				ex := NewExport(ctx, s.client(t, mainRef), "f", mainRef, t.TempDir(), Options{Known: known})
				exportLikeBuildKit(t, ex, [][]byte{layer, randomBytes(t, 700)})
				st, err := ex.Finalize(ctx)
				if err == nil || st.IndexKey != "" || len(st.Failed) != 1 || st.Failed[0] != digest.FromBytes(layer).String() {
					t.Fatalf("Finalize = %+v, %v; want no index, failed %s", st, err, digest.FromBytes(layer))
				}
				for _, e := range s.emu.Entries("o/r") {
					if strings.HasPrefix(e.Key, "index-") {
						t.Errorf("an index was written: %s", e.Key)
					}
				}
			})
		})
	}
}
