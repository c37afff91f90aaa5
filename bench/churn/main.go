// Command churn plays a month of a repository's life against the Actions
// cache emulator with its LRU quota on, three cache strategies side by
// side, and reports whether the default branch's cache survives.
//
//	source .testenv/env
//	go run ./bench/churn -ablations       # the month at two quotas, writes bench/churn/results.md
//	go run ./bench/churn -days 3 -out ''  # a quick look
//
// Each strategy gets its own repository in one emulator (so one quota
// each) whose blobs live in Azurite (the testenv's, BKCACHE_TEST_AZURE_*),
// and sees the same events. Every build is an export the way BuildKit's
// gha exporter makes it, through ghacache, of synthetic layers; bkcache's
// strategies plan it with scope.Derive and plan.Expand and clean up with
// the function internal/cli calls. See BENCHMARKS.md "Cache economy".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
	"github.com/bkcache/bkcache/internal/testenv"
)

type options struct {
	days      int
	seed      uint64
	scale     float64
	quota     int64 // bytes; 0 means 1 GiB × scale
	out       string
	ablations bool
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "churn:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("churn", flag.ContinueOnError)
	fs.IntVar(&o.days, "days", 30, "simulated days")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed of the scenario")
	fs.Float64Var(&o.scale, "scale", 0.1, "layer and quota sizes relative to the issue's (1 GiB quota, ~100 MiB mode=max cache)")
	ratios := fs.String("ratios", "10,3", "quotas to simulate, as multiples of the mode=max cache's size: 10 is the issue's 1 GB against ~100 MB")
	fs.BoolVar(&o.ablations, "ablations", false, "also run the third strategy with each addition removed, and with the ones left out")
	notes := fs.String("notes", "bench/churn/notes.md", "hand-written notes to append to the report, if the file exists")
	fs.StringVar(&o.out, "out", "bench/churn/results.md", "Markdown report to write (empty: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.days < 1 || o.scale <= 0 {
		return errors.New("-days and -scale must be positive")
	}
	var quotas []int64
	for _, r := range strings.Split(*ratios, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil || f <= 0 {
			return fmt.Errorf("-ratios: %q is not a positive number", r)
		}
		quotas = append(quotas, int64(f*float64(modeMaxSize(o.scale))))
	}
	env := testenv.Get()
	if env.AzureAccountURL == "" {
		return errors.New("no Azurite: BKCACHE_TEST_AZURE_ACCOUNT_URL is not set (scripts/testenv up; source .testenv/env)")
	}
	var md strings.Builder
	for _, q := range quotas {
		start := time.Now()
		store, err := newAzureStore(ctx, env)
		if err != nil {
			return err
		}
		o.quota = q
		res, err := simulate(ctx, store, o)
		if err != nil {
			return err
		}
		res.wall = time.Since(start)
		md.WriteString(res.markdown())
		fmt.Fprint(stdout, res.markdown())
	}
	if n, err := os.ReadFile(*notes); err == nil {
		md.WriteString("\n" + strings.TrimSpace(string(n)) + "\n")
	}
	if o.out != "" {
		return os.WriteFile(o.out, []byte(md.String()), 0o644)
	}
	return nil
}

// newAzureStore is a fresh container in the testenv's Azurite.
func newAzureStore(ctx context.Context, env testenv.Env) (*emulator.AzureStore, error) {
	name := env.AzureAccountName
	if name == "" {
		name = "devstoreaccount1"
	}
	return emulator.NewAzureStore(ctx, emulator.AzureConfig{
		AccountURL: env.AzureAccountURL, AccountName: name, AccountKey: env.AzureAccountKey,
		Container: fmt.Sprintf("churn-%d", time.Now().UnixNano()),
	})
}

// result is what a simulation measured.
type result struct {
	opts       options
	events     map[kind]int
	strategies []*strategy
	stats      map[*strategy]*stats
	wall       time.Duration
}

// simulate runs the scenario of o on an emulator over store.
func simulate(ctx context.Context, store emulator.BlobStore, o options) (*result, error) {
	// The month starts on a Monday, in the future so that signed URLs
	// (checked by Azurite against the real clock) stay valid.
	t0 := time.Now().UTC().Truncate(24 * time.Hour)
	for t0.Weekday() != time.Monday {
		t0 = t0.Add(24 * time.Hour)
	}
	clk := &clock{now: t0}
	emu, err := emulator.New(emulator.Config{
		Secret: []byte("churn-simulator-secret"), Blobs: store, Now: clk.Now,
		Faults:       emulator.Faults{QuotaBytes: o.quota},
		SignedURLTTL: time.Duration(o.days+2) * 24 * time.Hour,
	})
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(emu)
	defer srv.Close()
	w := &world{
		emu: emu, url: srv.URL, clock: clk, scale: o.scale, quota: o.quota,
		payload:    &payloads{repo: "sim/app"},
		layers:     newLayerSource(o.seed, 1<<20),
		main:       tree{classBuilderBase: "1", classDeps: "1", classSource: "0", classRuntimeBase: "1", classPackages: "1"},
		prs:        map[int]*prState{},
		strategies: theStrategies(o.ablations),
		stats:      map[*strategy]*stats{},
		http:       map[*strategy]*countingTransport{},
	}
	for _, s := range w.strategies {
		w.stats[s] = &stats{}
		w.http[s] = &countingTransport{base: http.DefaultTransport, host: hostOf(srv.URL)}
	}
	sc := newScenario(o.seed, o.days, t0)
	// The default branch's first build, before the month starts.
	seedBuild := event{at: t0, kind: pushMain}
	for _, s := range w.strategies {
		if err := w.run(ctx, s, seedBuild, w.main); err != nil {
			return nil, fmt.Errorf("%s: first build: %w", s, err)
		}
	}
	w.mainRun = stepKeys(w.main)
	for _, s := range w.strategies {
		w.stats[s].main = stateCount{} // that build found nothing, by design
	}
	if err := w.play(ctx, sc, o.days); err != nil {
		return nil, err
	}
	res := &result{opts: o, events: map[kind]int{}, stats: w.stats, strategies: w.strategies}
	for _, e := range sc.events {
		res.events[e.kind]++
	}
	return res, nil
}
