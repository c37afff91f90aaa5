// Command churn plays a month of a repository's life against the Actions
// cache emulator with GitHub's policies on (the LRU quota applied in
// hourly batches, entries unused for 7 days expired), cache strategies
// side by side, over several seeds and quotas, and reports whether the
// default branch's cache survives, with the spread over the seeds.
//
//	go run ./bench/churn                          # the full report: 3 quotas × 5 seeds, writes bench/churn/results.md
//	go run ./bench/churn -seeds 1 -ratios 2 -days 7 -out ''   # a quick look
//
// Each strategy gets its own repository in one emulator (so one quota
// each) and sees the same events. Blobs live in memory (-store mem, the
// default) or in the testenv's Azurite (-store azurite). Every build is an
// export the way BuildKit's gha exporter makes it, through ghacache, of
// synthetic layers; bkcache's strategies plan it with scope.Derive and
// plan.Expand and clean up with the functions internal/buildjob calls. See
// BENCHMARKS.md "Cache economy".
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
	quota     int64 // bytes
	holiday   int   // days of the quiet holiday; 0: none
	expire    time.Duration
	evict     time.Duration // eviction batch period; 0: after each upload
	ablations bool
}

// The full report's knobs: what `make churn` runs.
const (
	fullSeeds  = "1,2,3,4,5"
	fullRatios = "10,3,2"
	fullDays   = 30
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "churn:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("churn", flag.ContinueOnError)
	fs.IntVar(&o.days, "days", fullDays, "simulated days")
	seeds := fs.String("seeds", fullSeeds, "random seeds of the scenarios, comma-separated: each is another month")
	fs.Float64Var(&o.scale, "scale", 0.1, "layer, archive and quota sizes relative to the issue's (1 GiB quota, ~100 MiB mode=max cache); only their ratios matter")
	ratios := fs.String("ratios", fullRatios, "quotas to simulate, as multiples of the mode=max cache's size: 10 is the issue's 1 GB against ~100 MB")
	fs.IntVar(&o.holiday, "holiday", 9, "days of a holiday with no activity, from the second Saturday (0: none)")
	fs.DurationVar(&o.expire, "expire", 7*24*time.Hour, "entries not accessed for this long are removed, as GitHub does (0: never)")
	fs.DurationVar(&o.evict, "evict-every", time.Hour, "the quota is applied in batches this often, as GitHub does since November 2025 (0: after each upload)")
	fs.BoolVar(&o.ablations, "ablations", true, "also run the third strategy with each addition removed, and with the ones left out")
	store := fs.String("store", "mem", "where archives live: mem (in process, fastest) or azurite (the testenv's, BKCACHE_TEST_AZURE_*)")
	notes := fs.String("notes", "bench/churn/notes.md", "hand-written notes to append to the report, if the file exists")
	out := fs.String("out", "bench/churn/results.md", "Markdown report to write (empty: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.days < 1 || o.scale <= 0 || o.holiday < 0 || o.expire < 0 || o.evict < 0 {
		return errors.New("-days and -scale must be positive; -holiday, -expire and -evict-every not negative")
	}
	var ratioList []float64
	for _, r := range strings.Split(*ratios, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil || f <= 0 {
			return fmt.Errorf("-ratios: %q is not a positive number", r)
		}
		ratioList = append(ratioList, f)
	}
	var seedList []uint64
	for _, v := range strings.Split(*seeds, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("-seeds: %q is not a seed", v)
		}
		seedList = append(seedList, n)
	}
	newStore, err := storeFunc(*store)
	if err != nil {
		return err
	}
	rep := &report{opts: o, args: args, seeds: seedList, ratios: ratioList}
	start := time.Now()
	for _, ratio := range ratioList {
		for _, seed := range seedList {
			t0 := time.Now()
			bs, closeStore, err := newStore(ctx)
			if err != nil {
				return err
			}
			so := o
			so.seed = seed
			so.quota = int64(ratio * float64(modeMaxSize(o.scale)))
			res, err := simulate(ctx, bs, so)
			closeStore()
			if err != nil {
				return fmt.Errorf("ratio %g, seed %d: %w", ratio, seed, err)
			}
			res.wall = time.Since(t0)
			rep.add(ratio, res)
			fmt.Fprintf(stdout, "ratio %g seed %d: %s (%s)\n", ratio, seed, res.oneLine(), res.wall.Round(time.Second))
		}
	}
	rep.wall = time.Since(start)
	md := rep.markdown()
	fmt.Fprint(stdout, "\n"+md)
	if n, err := os.ReadFile(*notes); err == nil {
		md += "\n" + strings.TrimSpace(string(n)) + "\n"
	}
	if *out != "" {
		return os.WriteFile(*out, []byte(md), 0o644)
	}
	return nil
}

// storeFunc returns a maker of fresh blob stores of kind.
func storeFunc(kind string) (func(context.Context) (emulator.BlobStore, func(), error), error) {
	switch kind {
	case "mem":
		return func(context.Context) (emulator.BlobStore, func(), error) {
			m := emulator.NewMemoryStore()
			srv := httptest.NewServer(m)
			m.URL = srv.URL
			return m, srv.Close, nil
		}, nil
	case "azurite":
		env := testenv.Get()
		if env.AzureAccountURL == "" {
			return nil, errors.New("no Azurite: BKCACHE_TEST_AZURE_ACCOUNT_URL is not set (scripts/testenv up; source .testenv/env)")
		}
		return func(ctx context.Context) (emulator.BlobStore, func(), error) {
			s, err := newAzureStore(ctx, env)
			return s, func() {}, err
		}, nil
	}
	return nil, fmt.Errorf("-store: %q is neither mem nor azurite", kind)
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

// result is what one simulation (one seed, one quota) measured.
type result struct {
	opts       options
	events     map[kind]int
	facts      facts
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
		Faults:       emulator.Faults{QuotaBytes: o.quota, ExpireUnused: o.expire, EvictEvery: o.evict},
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
	sc := newScenario(o.seed, o.days, t0, o.holiday)
	// The default branch's first build, before the month starts.
	seedBuild := event{at: t0, kind: pushMain}
	for _, s := range w.strategies {
		p, err := w.start(ctx, s, seedBuild, w.main)
		if err == nil {
			err = w.finish(ctx, s, p)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: first build: %w", s, err)
		}
		*w.stats[s] = stats{} // that build found nothing, by design
	}
	w.mainRun = stepKeys(w.main)
	if err := w.play(ctx, sc, o.days); err != nil {
		return nil, err
	}
	res := &result{opts: o, events: map[kind]int{}, stats: w.stats, strategies: w.strategies, facts: w.facts}
	for _, e := range sc.events {
		res.events[e.kind]++
	}
	return res, nil
}
