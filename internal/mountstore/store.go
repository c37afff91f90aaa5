// Package mountstore keeps cache mount archives in the store the build
// cache uses: a local directory, the GitHub Actions cache, S3 or Azure Blob
// Storage, or a registry. One Store per planned cache entry; the entry's scope names the
// archive, so mounts follow the build cache's scopes and trust rules.
package mountstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/redact"
)

// Store holds archives by key.
type Store interface {
	// Get opens the archive saved under key and says its size (-1: the
	// store did not say). It returns ErrNotFound when there is none.
	Get(ctx context.Context, key string) (rc io.ReadCloser, size int64, err error)
	// Put saves size bytes of r under key, replacing what was there.
	Put(ctx context.Context, key string, r io.ReaderAt, size int64) error
	// String names the store and scope for the log, without secrets.
	String() string
}

// ErrNotFound says a store has no archive under a key.
var ErrNotFound = errors.New("no archive")

// ErrUnsupported says a cache type carries no cache mounts.
var ErrUnsupported = errors.New("cache type carries no cache mounts")

// ArchiveName is the object name of a mount's archive under a scope.
func ArchiveName(mountKey string) string { return mountKey + ".tar.zst" }

// FromEntry opens the store a planned cache entry points at. Imports and
// exports of the same scope give the same store. getenv supplies what the
// runtime provides (the gha token, AWS and Azure defaults).
//
// Its errors, and those of the Store, are redacted (redact.String with
// the entry's secrets): a store's SDK may echo a signed URL or a key, and
// a signature the service minted is not a value the runner masks.
func FromEntry(ctx context.Context, e cacheentry.Entry, getenv func(string) string) (Store, error) {
	s, err := fromEntry(ctx, e, getenv)
	if err != nil {
		return nil, redact.Error(err, e.Secrets()...)
	}
	return redacting{s, e.Secrets()}, nil
}

// redacting redacts the errors of a Store; errors.Is still sees
// ErrNotFound.
type redacting struct {
	Store
	secrets []string
}

func (r redacting) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	rc, size, err := r.Store.Get(ctx, key)
	return rc, size, redact.Error(err, r.secrets...)
}

func (r redacting) Put(ctx context.Context, key string, rd io.ReaderAt, size int64) error {
	return redact.Error(r.Store.Put(ctx, key, rd, size), r.secrets...)
}

func (r redacting) String() string { return redact.String(r.Store.String(), r.secrets...) }

func fromEntry(ctx context.Context, e cacheentry.Entry, getenv func(string) string) (Store, error) {
	switch e.Type {
	case cacheentry.TypeLocal:
		dir := e.Attrs["dest"]
		if dir == "" {
			dir = e.Attrs["src"]
		}
		return NewLocal(dir + ".mounts"), nil
	case cacheentry.TypeGHA:
		return newGHA(e.Attrs, getenv)
	case cacheentry.TypeS3:
		return newS3(ctx, e.Attrs)
	case cacheentry.TypeAzblob:
		return newAzblob(e.Attrs, getenv)
	case cacheentry.TypeRegistry:
		return newRegistry(e.Attrs)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupported, e.Type)
}

// Describe names where FromEntry(e) keeps archives, for the log and dry
// runs, without opening anything or showing secrets.
func Describe(e cacheentry.Entry) string {
	a := e.Attrs
	switch e.Type {
	case cacheentry.TypeLocal:
		dir := a["dest"]
		if dir == "" {
			dir = a["src"]
		}
		return "local " + dir + ".mounts"
	case cacheentry.TypeGHA:
		return "gha scope " + ghaScope(a)
	case cacheentry.TypeS3:
		return "s3 " + a["bucket"] + "/" + objectBase(a)
	case cacheentry.TypeAzblob:
		return "azblob " + objectBase(a)
	case cacheentry.TypeRegistry:
		return "registry " + a["ref"] + "-mount-<mount>"
	}
	return e.Type
}

// objectBase is the S3 and Azure object prefix of a scope's archives.
func objectBase(a map[string]string) string {
	return a["prefix"] + path.Join("cache-mounts", a["name"]) + "/"
}

// section reads the first size bytes of r as a stream.
func section(r io.ReaderAt, size int64) *io.SectionReader { return io.NewSectionReader(r, 0, size) }
