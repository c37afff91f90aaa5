package contexthash

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkFiles hashes a 2000-file, 8 MiB context (COPY . .), from
// scratch and with the size+mtime reuse of an earlier run.
func BenchmarkFiles(b *testing.B) {
	dir := b.TempDir()
	body := make([]byte, 4096)
	old := time.Now().Add(-time.Hour)
	for i := range 2000 {
		p := filepath.Join(dir, fmt.Sprintf("pkg%02d", i%40), fmt.Sprintf("f%04d.go", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		body[0] = byte(i)
		if err := os.WriteFile(p, body, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			b.Fatal(err)
		}
	}
	for _, reuse := range []bool{false, true} {
		b.Run(fmt.Sprintf("reuse=%v", reuse), func(b *testing.B) {
			opt := Options{}
			if reuse {
				opt.Reuse = filepath.Join(b.TempDir(), "hashes.json")
				if _, _, err := Files(context.Background(), dir, []string{"."}, opt); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if _, _, err := Files(context.Background(), dir, []string{"."}, opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
