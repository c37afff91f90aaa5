// Command gha-cache-emulator runs the GitHub Actions cache service emulator
// (package ghacache/emulator) as a local server, and mints runtime tokens
// for it.
//
//	gha-cache-emulator serve --listen 127.0.0.1:7071 \
//	    --blob-account-url http://127.0.0.1:10000/devstoreaccount1 \
//	    --blob-account-name devstoreaccount1 --blob-account-key KEY \
//	    --container gha-cache --secret-file FILE
//	gha-cache-emulator token --secret-file FILE --repo o/r \
//	    --write refs/pull/1/merge --read refs/heads/main
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
