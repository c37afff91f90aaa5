package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
)

// NewAzuriteStore returns a fresh container, named prefix plus a random
// suffix, in the test environment's Azurite. The Actions cache emulator
// keeps its blobs there as the real service keeps them in Azure, handing
// out SAS URLs that Azurite checks for real.
func NewAzuriteStore(t testing.TB, prefix string) *emulator.AzureStore {
	t.Helper()
	env := Require(t, "azure")
	name := env.AzureAccountName
	if name == "" {
		name = "devstoreaccount1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := emulator.NewAzureStore(ctx, emulator.AzureConfig{
		AccountURL: env.AzureAccountURL, AccountName: name, AccountKey: env.AzureAccountKey,
		Container: prefix + "-" + RandomHex(6),
	})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// NewGHAEmulator returns an Actions cache emulator configured by cfg, with
// a random secret and a fresh Azurite container (NewAzuriteStore) unless
// cfg sets them. Serve it with httptest.NewServer, which listens on
// loopback.
func NewGHAEmulator(t testing.TB, prefix string, cfg emulator.Config) *emulator.Emulator {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = []byte(RandomHex(32))
	}
	if cfg.Blobs == nil {
		cfg.Blobs = NewAzuriteStore(t, prefix)
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return emu
}

// RandomHex returns 2n random lowercase hex digits: a fresh name part, so
// tests never read each other's caches.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
