package mountstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// failing is a store whose SDK errors echo what it was given.
type failing struct{ err error }

func (f failing) Get(context.Context, string) (io.ReadCloser, error)    { return nil, f.err }
func (f failing) Put(context.Context, string, io.ReaderAt, int64) error { return f.err }
func (f failing) String() string                                        { return "fake" }

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
			_, getErr := s.Get(context.Background(), "k")
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
