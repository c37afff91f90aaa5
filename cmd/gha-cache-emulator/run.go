package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
)

const usage = `usage:
  gha-cache-emulator serve --secret-file FILE --blob-account-url URL --blob-account-name NAME --blob-account-key KEY [flags]
  gha-cache-emulator token --secret-file FILE --repo OWNER/NAME [--write REF] [--read REF]... [--ttl 6h]
Run "gha-cache-emulator serve -h" or "token -h" for the flags.
`

// run is the whole command; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "token":
		err = token(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "gha-cache-emulator: unknown subcommand %q (want serve or token)\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "gha-cache-emulator %s: %v\n", args[0], err)
	return 1
}

// errUsage marks errors the flag package has already printed.
var errUsage = errors.New("usage")

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	return nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:7071", "address to listen on")
	accountURL := fs.String("blob-account-url", "", "Azure blob service URL, IP style for Azurite (http://127.0.0.1:10000/devstoreaccount1)")
	accountName := fs.String("blob-account-name", "", "Azure storage account name")
	accountKey := fs.String("blob-account-key", "", "Azure storage account key (base64)")
	container := fs.String("container", "gha-cache", "blob container, created if missing")
	secretFile := fs.String("secret-file", "", "file holding the token signing secret; created with a random secret if missing")
	quota := fs.Int64("quota-bytes", 0, "per-repository cache budget; least recently used entries are evicted past it (0: unlimited)")
	upm := fs.Int("uploads-per-minute", 0, "answer 429 with Retry-After past this many cache uploads per repository a minute (0: unlimited)")
	restToken := fs.String("rest-token", "", "only token the REST management API accepts (default: any non-empty token)")
	urlTTL := fs.Duration("signed-url-ttl", 10*time.Minute, "lifetime of signed blob URLs")
	quiet := fs.Bool("quiet", false, "do not log requests")
	if err := parse(fs, args); err != nil {
		return err
	}
	var missing []string
	for name, v := range map[string]string{"--secret-file": *secretFile, "--blob-account-url": *accountURL, "--blob-account-name": *accountName, "--blob-account-key": *accountKey, "--container": *container} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing required flags: %s", strings.Join(slices.Sorted(slices.Values(missing)), ", "))
	}
	if *quota < 0 {
		return fmt.Errorf("--quota-bytes %d: must be 0 or more", *quota)
	}
	if *upm < 0 {
		return fmt.Errorf("--uploads-per-minute %d: must be 0 or more", *upm)
	}
	if *urlTTL <= 0 {
		return fmt.Errorf("--signed-url-ttl %v: must be positive", *urlTTL)
	}
	secret, err := readOrCreateSecret(*secretFile)
	if err != nil {
		return fmt.Errorf("--secret-file: %w", err)
	}
	store, err := emulator.NewAzureStore(ctx, emulator.AzureConfig{AccountURL: *accountURL, AccountName: *accountName, AccountKey: *accountKey, Container: *container})
	if err != nil {
		return err
	}
	cfg := emulator.Config{
		Secret: secret, Blobs: store, RESTToken: *restToken, SignedURLTTL: *urlTTL,
		Faults: emulator.Faults{QuotaBytes: *quota, UploadsPerMinute: *upm},
	}
	if !*quiet {
		cfg.Logf = func(f string, a ...any) { fmt.Fprintf(stderr, time.Now().UTC().Format(time.TimeOnly)+" "+f+"\n", a...) }
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 30 * time.Second}
	fmt.Fprintf(stdout, "gha-cache-emulator listening on http://%s/\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// readOrCreateSecret reads the signing secret, or writes a new random one
// (mode 0600) when the file does not exist yet.
func readOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		s := make([]byte, 32)
		if _, err := rand.Read(s); err != nil {
			return nil, err
		}
		b = []byte(hex.EncodeToString(s))
		if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
			return nil, err
		}
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	return checkSecret(b)
}

func checkSecret(b []byte) ([]byte, error) {
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) < 16 {
		return nil, fmt.Errorf("secret is %d bytes; want at least 16", len(b))
	}
	return b, nil
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secretFile := fs.String("secret-file", "", "file holding the token signing secret (as given to serve)")
	repo := fs.String("repo", "", "repository, owner/name")
	write := fs.String("write", "", "the ref the token may write (and read), e.g. refs/heads/main or refs/pull/1/merge")
	var read stringList
	fs.Var(&read, "read", "a further ref the token may read; repeatable")
	ttl := fs.Duration("ttl", emulator.DefaultTokenTTL, "token lifetime")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *secretFile == "":
		return errors.New("missing required flag --secret-file")
	case *repo == "":
		return errors.New("missing required flag --repo")
	case *write == "" && len(read) == 0:
		return errors.New("give --write REF and/or --read REF")
	case *ttl <= 0:
		return fmt.Errorf("--ttl %v: must be positive", *ttl)
	}
	b, err := os.ReadFile(*secretFile)
	if err != nil {
		return fmt.Errorf("--secret-file: %w", err)
	}
	secret, err := checkSecret(b)
	if err != nil {
		return fmt.Errorf("--secret-file: %w", err)
	}
	tok, err := emulator.MintToken(secret, emulator.TokenOptions{Repo: *repo, Write: *write, Read: read, TTL: *ttl})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
