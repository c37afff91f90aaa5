package contentstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
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

// TestFinalizeWaitsForAnotherJobsUpload: a layer another job is uploading
// ("already exists" here) is named once that upload finishes.
func TestFinalizeWaitsForAnotherJobsUpload(t *testing.T) {
	defer func(w []time.Duration) { reservedWait = w }(reservedWait)
	reservedWait = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	services(t, func(t *testing.T, s service) {
		ctx := context.Background()
		layer := randomBytes(t, 5000)
		g := &gatedReaderAt{data: layer, started: make(chan struct{}), release: make(chan struct{})}
		done := make(chan error)
		go func() {
			done <- s.client(t, mainRef).Save(ctx, ghacache.BlobKey(digest.FromBytes(layer).String()), ghacache.BuildKitVersion(), g, int64(len(layer)))
		}()
		<-g.started // reserved, uploading
		ex := NewExport(ctx, s.client(t, mainRef), "w", mainRef, t.TempDir(), Options{})
		exportLikeBuildKit(t, ex, [][]byte{layer})
		go func() { time.Sleep(200 * time.Millisecond); close(g.release) }()
		st, err := ex.Finalize(ctx)
		if err := <-done; err != nil {
			t.Fatalf("the other job's save: %v", err)
		}
		if err != nil || st.IndexKey == "" || st.Skipped != 1 || st.Uploaded != 0 {
			t.Fatalf("Finalize = %+v, %v; want an index, the layer counted as already there", st, err)
		}
	})
}

// gatedReaderAt serves data once release is closed; started is closed at
// the first read.
type gatedReaderAt struct {
	data    []byte
	once    sync.Once
	started chan struct{}
	release chan struct{}
}

func (g *gatedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	g.once.Do(func() { close(g.started) })
	<-g.release
	return bytes.NewReader(g.data).ReadAt(p, off)
}
