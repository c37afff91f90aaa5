package ghacache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
)

// BenchmarkSave uploads a 64 MiB blob through the emulator in 4 MiB blocks,
// one at a time versus four in parallel, to the in-memory store and to
// Azurite (real SAS URLs). Run: go test -run - -bench Save ./ghacache/
func BenchmarkSave(b *testing.B) {
	const size = 64 << 20
	data := randomBytes(b, size)
	for _, store := range []string{"memory", "azurite"} {
		for _, conc := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/concurrency=%d", store, conc), func(b *testing.B) {
				env := memoryEmu(b)
				if store == "azurite" {
					env = azuriteEmu(b)
				}
				c := env.client(b, true, env.token(b, "refs/heads/main"))
				c.cfg.UploadConcurrency = conc
				ctx := context.Background()
				b.SetBytes(size)
				b.ResetTimer()
				for i := range b.N {
					if err := c.Save(ctx, fmt.Sprintf("bench-%d", i), "v", bytes.NewReader(data), size); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkLoad downloads the same 64 MiB blob.
func BenchmarkLoad(b *testing.B) {
	const size = 64 << 20
	data := randomBytes(b, size)
	for _, store := range []string{"memory", "azurite"} {
		b.Run(store, func(b *testing.B) {
			env := memoryEmu(b)
			if store == "azurite" {
				env = azuriteEmu(b)
			}
			c := env.client(b, true, env.token(b, "refs/heads/main"))
			ctx := context.Background()
			if err := c.Save(ctx, "bench", "v", bytes.NewReader(data), size); err != nil {
				b.Fatal(err)
			}
			e, ok, err := c.Lookup(ctx, "bench", nil, "v")
			if err != nil || !ok {
				b.Fatal(ok, err)
			}
			b.SetBytes(size)
			b.ResetTimer()
			for range b.N {
				rc, err := c.Load(ctx, e)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, rc); err != nil || n != size {
					b.Fatal(n, err)
				}
				rc.Close()
			}
		})
	}
}
