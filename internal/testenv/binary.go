package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	staticOnce sync.Once
	staticPath string
	staticErr  error
)

// StaticBkcache builds bkcache once per test binary as the static linux
// binary that the cache-mount helper builds run inside the builder (the
// action ships the same in dist/). The file outlives the test binary in the
// system's temporary directory.
func StaticBkcache(t testing.TB) string {
	t.Helper()
	staticOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bkcache-static-")
		if err != nil {
			staticErr = err
			return
		}
		staticPath = filepath.Join(dir, "bkcache")
		cmd := exec.Command("go", "build", "-o", staticPath, "github.com/bkcache/bkcache")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if out, err := cmd.CombinedOutput(); err != nil {
			staticErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if staticErr != nil {
		t.Fatalf("building the static bkcache: %v", staticErr)
	}
	return staticPath
}
