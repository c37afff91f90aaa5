package mountstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

// failing is a store whose SDK errors echo what it was given.
type failing struct{ err error }

func (f failing) Get(context.Context, string) (io.ReadCloser, int64, error) { return nil, 0, f.err }
func (f failing) Put(context.Context, string, io.ReaderAt, int64) error     { return f.err }
func (f failing) String() string                                            { return "fake" }

// TestStoreErrorsRedacted: a signature the cache service minted (which
// no runner mask knows) and the entry's own secrets never survive in a
// store's errors; ErrNotFound is still ErrNotFound.
func TestStoreErrorsRedacted(t *testing.T) {
	const minted = "Zm9yZ2VkU2lnbmF0dXJlVGhlUnVubmVyRG9lc05vdEtub3c"
	const key = "c2VjcmV0LWFjY291bnQta2V5LXZhbHVl"
	for _, tt := range []struct {
		name string
		err  error
		gone []string
		is   error
	}{
		{"signed URL in an SDK error", fmt.Errorf("PUT https://acct.blob.core.windows.net/c/mount.tar.zst?sv=2023-01-03&sig=%s: 403", minted), []string{minted}, nil},
		{"detached signature in a response body", fmt.Errorf("<Error>sig=%s</Error>", minted), []string{minted}, nil},
		{"the entry's key echoed", fmt.Errorf("InvalidAccessKeyId: %s", key), []string{key}, nil},
		{"not found stays not found", fmt.Errorf("lookup %s: %w", key, ErrNotFound), []string{key}, ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := redacting{failing{tt.err}, []string{key}}
			_, _, getErr := s.Get(context.Background(), "k")
			putErr := s.Put(context.Background(), "k", strings.NewReader("x"), 1)
			for _, err := range []error{getErr, putErr} {
				if err == nil {
					t.Fatal("no error")
				}
				for _, g := range tt.gone {
					if strings.Contains(err.Error(), g) {
						t.Errorf("error %q keeps %q", err, g)
					}
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
				}
			}
		})
	}
}

// TestRegistryRefExact: every scope tag and key names its own archive,
// in a valid tag, however long the scope's tag.
func TestRegistryRefExact(t *testing.T) {
	long := strings.Repeat("x", 120)
	for _, tt := range []struct {
		name string
		a, b [2]string // scope tag, key
	}{
		{"keys that extend each other", [2]string{"main", "go-0123456789ab"}, [2]string{"main", "go-build-0123456789ab"}},
		{"long scope tags that end alike", [2]string{"a" + long, "go-0123456789ab"}, [2]string{"b" + long, "go-0123456789ab"}},
		{"a long and a short scope tag", [2]string{"a" + long, "k"}, [2]string{long[:60], "k"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var refs []string
			for _, sk := range [][2]string{tt.a, tt.b} {
				r, err := newRegistry(map[string]string{"ref": "localhost:5000/app/cache:" + sk[0]})
				if err != nil {
					t.Fatal(err)
				}
				ref := r.ref(sk[1])
				if _, err := reference.ParseNormalizedNamed(ref); err != nil {
					t.Errorf("ref(%q) under %q = %q, not a reference: %v", sk[1], sk[0], ref, err)
				}
				refs = append(refs, ref)
			}
			if refs[0] == refs[1] {
				t.Errorf("%v and %v share %s", tt.a, tt.b, refs[0])
			}
		})
	}
	r, _ := newRegistry(map[string]string{"ref": "localhost:5000/app/cache:main"})
	if got, want := r.ref("go-0123456789ab"), "localhost:5000/app/cache:main-mount-go-0123456789ab"; got != want {
		t.Errorf("short ref = %s, want %s (unchanged, so existing archives stay readable)", got, want)
	}
}
