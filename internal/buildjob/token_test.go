package buildjob

import (
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
)

// mintToken is a runtime token of the emulator (GitHub's shape) that may
// write ref.
func mintToken(t *testing.T, ref string) string {
	t.Helper()
	tok, err := emulator.MintToken([]byte("buildjob-test"), emulator.TokenOptions{Repo: "Codertocat/Hello-World", Write: ref, Now: time.Now(), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
