package mountstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
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
	return &GHA{c: c, scope: attrs["scope"], now: time.Now}, nil
}

func (g *GHA) String() string { return "gha scope " + g.scope }

func (g *GHA) prefix(key string) string { return ghacache.MountKeyPrefix + g.scope + "-" + key + "-" }

func (g *GHA) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p := g.prefix(key)
	e, found, err := g.c.Lookup(ctx, p, []string{p}, ghaVersion)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNotFound
	}
	return g.c.Load(ctx, e)
}

func (g *GHA) Put(ctx context.Context, key string, r io.ReaderAt, size int64) error {
	k := g.prefix(key) + strconv.FormatInt(g.now().UnixNano(), 36)
	if err := g.c.Save(ctx, k, ghaVersion, r, size); err != nil {
		return fmt.Errorf("gha: %w", err)
	}
	return nil
}
