package mountstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/cacheentry"
)

// ghaEmulator serves an in-process gha cache and returns the runner
// environment of a job on main.
func ghaEmulator(t *testing.T) func(string) string {
	t.Helper()
	mem := emulator.NewMemoryStore()
	blobs := httptest.NewServer(mem)
	t.Cleanup(blobs.Close)
	mem.URL = blobs.URL
	emu, err := emulator.New(emulator.Config{Secret: []byte("0123456789abcdef0123456789abcdef"), Blobs: mem})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	tok, err := emu.Token(emulator.TokenOptions{Repo: "o/r", Write: "refs/heads/main", TTL: time.Hour, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"ACTIONS_RUNTIME_TOKEN": tok, "ACTIONS_RESULTS_URL": srv.URL + "/", "ACTIONS_CACHE_SERVICE_V2": "true"}
	return func(k string) string { return vars[k] }
}

// TestGHAReadsExactlyItsOwn: the service looks keys up by prefix; a read
// still gets only the archive saved under its own scope and key, however
// the others' names extend or contain it, and whichever was saved last.
func TestGHAReadsExactlyItsOwn(t *testing.T) {
	type archive struct{ scope, key string }
	for _, tt := range []struct {
		name  string
		saved []archive // in this order; each holds its own name
	}{
		{"a key that extends another, saved after it", []archive{{"app", "go"}, {"app", "go-build"}}},
		{"a key that extends another, saved before it", []archive{{"app", "go-build"}, {"app", "go"}}},
		{"a scope that extends another", []archive{{"app", "go"}, {"app-go", "x"}, {"app-go-x", "go"}}},
		{"the terminator in a scope and a key", []archive{{"a", "b~c"}, {"a~b", "c"}, {"a%7Eb", "c"}}},
		{"a comma in a scope", []archive{{"a,b", "go"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			getenv := ghaEmulator(t)
			open := func(scope string) Store {
				s, err := FromEntry(ctx, cacheentry.Entry{Type: "gha", Attrs: map[string]string{"scope": scope}}, getenv)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			for _, a := range tt.saved {
				content := a.scope + " " + a.key
				if err := open(a.scope).Put(ctx, a.key, bytes.NewReader([]byte(content)), int64(len(content))); err != nil {
					t.Fatalf("Put %v: %v", a, err)
				}
				time.Sleep(5 * time.Millisecond) // the service orders entries by creation time
			}
			for _, a := range tt.saved {
				rc, _, err := open(a.scope).Get(ctx, a.key)
				if err != nil {
					t.Fatalf("Get %v: %v", a, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if want := a.scope + " " + a.key; err != nil || string(got) != want {
					t.Errorf("Get %v = %q, %v; want %q", a, got, err, want)
				}
			}
			if _, _, err := open(tt.saved[0].scope).Get(ctx, "g"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get of a key that prefixes the others: %v, want ErrNotFound", err)
			}
		})
	}
}

// TestGHADefaultScope: an entry without scope= keeps its mounts under
// BuildKit's default gha scope, where its build cache goes, not under "".
func TestGHADefaultScope(t *testing.T) {
	ctx := context.Background()
	getenv := ghaEmulator(t)
	unscoped := cacheentry.Entry{Type: "gha", Attrs: map[string]string{}}
	s, err := FromEntry(ctx, unscoped, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "gha scope buildkit"; got != want || Describe(unscoped) != want {
		t.Errorf("String() = %q, Describe = %q; want %q", got, Describe(unscoped), want)
	}
	if err := s.Put(ctx, "go", bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	named, err := FromEntry(ctx, cacheentry.Entry{Type: "gha", Attrs: map[string]string{"scope": "buildkit"}}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := named.Get(ctx, "go")
	if err != nil {
		t.Fatalf("scope=buildkit does not read what the unscoped entry saved: %v", err)
	}
	rc.Close()
}
