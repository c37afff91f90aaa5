package mountstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bkcache/bkcache/ghacache"
)

// ghaVersion separates mount archives from other entries with the same
// key; ghacache's cleanup knows it and the key scheme.
const ghaVersion = ghacache.MountVersion

// GHA keeps archives in the GitHub Actions cache. Its entries are
// immutable, so each save gets a new key and Get takes the newest; the
// service itself limits reads to this ref, the PR base and the default
// branch, and writes to this ref.
type GHA struct {
	c     *ghacache.Client
	scope string
	now   func() time.Time
}

func newGHA(attrs map[string]string, getenv func(string) string) (*GHA, error) {
	cfg, ok := ghacache.ConfigFromEnv(getenv)
	if !ok {
		return nil, errors.New("gha: no ACTIONS_RUNTIME_TOKEN and cache URL")
	}
	c, err := ghacache.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return &GHA{c: c, scope: ghaScope(attrs), now: time.Now}, nil
}

// ghaScope is the entry's gha scope, BuildKit's default "buildkit" when
// it names none (cache/remotecache/gha/gha.go): the mounts go with the
// build cache the entry exports.
func ghaScope(attrs map[string]string) string {
	if s := attrs["scope"]; s != "" {
		return s
	}
	return "buildkit"
}

func (g *GHA) String() string { return "gha scope " + g.scope }

// Get looks up the series of exactly this scope and key: the service
// matches by prefix, and ghacache's key scheme makes no series the prefix
// of another (mount "go" is never served "go-build"'s archive).
func (g *GHA) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	p := ghacache.MountSeriesKey(g.scope, key)
	e, found, err := g.c.Lookup(ctx, p, []string{p}, ghaVersion)
	if err != nil {
		return nil, 0, err
	}
	if !found {
		return nil, 0, ErrNotFound
	}
	rc, err := g.c.Load(ctx, e)
	if err != nil {
		return nil, 0, err
	}
	size := int64(-1)
	if s, ok := rc.(interface{ Size() int64 }); ok {
		size = s.Size()
	}
	return rc, size, nil
}

func (g *GHA) Put(ctx context.Context, key string, r io.ReaderAt, size int64) error {
	k := ghacache.MountKey(g.scope, key, g.now())
	if err := g.c.Save(ctx, k, ghaVersion, r, size); err != nil {
		return fmt.Errorf("gha: %w", err)
	}
	return nil
}
