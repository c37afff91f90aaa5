package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bkcache/bkcache/bench/internal/rig"
)

// env is what the harness needs of the test environment (.testenv/env).
type env struct {
	buildkitd, buildctl, registry            string
	s3Endpoint, s3Bucket, s3Region           string
	s3Access, s3Secret                       string
	azURL, azName, azKey, ghaSecret, ghaCLI  string
	toxiproxy, goProxy, goSumDB, npmRegistry string
}

func loadEnv(o options) (env, error) {
	g := os.Getenv
	e := env{buildkitd: g("BKCACHE_TEST_BUILDKITD"), registry: g("BKCACHE_TEST_REGISTRY"),
		s3Endpoint: g("BKCACHE_TEST_S3_ENDPOINT"), s3Bucket: g("BKCACHE_TEST_S3_BUCKET"), s3Region: g("BKCACHE_TEST_S3_REGION"),
		s3Access: g("BKCACHE_TEST_S3_ACCESS_KEY"), s3Secret: g("BKCACHE_TEST_S3_SECRET_KEY"),
		azURL: g("BKCACHE_TEST_AZURE_ACCOUNT_URL"), azName: g("BKCACHE_TEST_AZURE_ACCOUNT_NAME"), azKey: g("BKCACHE_TEST_AZURE_ACCOUNT_KEY"),
		ghaSecret: g("BKCACHE_TEST_GHA_SECRET_FILE")}
	var missing []string
	need := func(name, v string) {
		if v == "" {
			missing = append(missing, name)
		}
	}
	need("BKCACHE_TEST_BUILDKITD", e.buildkitd)
	need("BKCACHE_TEST_REGISTRY", e.registry)
	if slices.Contains(o.configs, "s3") {
		need("BKCACHE_TEST_S3_ENDPOINT", e.s3Endpoint)
		need("BKCACHE_TEST_S3_BUCKET", e.s3Bucket)
		need("BKCACHE_TEST_S3_ACCESS_KEY", e.s3Access)
		need("BKCACHE_TEST_S3_SECRET_KEY", e.s3Secret)
	}
	if o.usesGHA() {
		need("BKCACHE_TEST_AZURE_ACCOUNT_URL", e.azURL)
		need("BKCACHE_TEST_GHA_SECRET_FILE", e.ghaSecret)
	}
	if len(missing) > 0 {
		return e, fmt.Errorf("test environment missing %s: run `scripts/testenv up && source .testenv/env`", strings.Join(missing, ", "))
	}
	if e.s3Region == "" {
		e.s3Region = "us-east-1"
	}
	e.buildctl = filepath.Join(filepath.Dir(e.buildkitd), "buildctl")
	look := func(name string) (string, error) {
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("%s not on PATH (source .testenv/env): %w", name, err)
		}
		return p, nil
	}
	var err error
	if o.usesGHA() {
		if e.ghaCLI, err = look("gha-cache-emulator"); err != nil {
			return e, err
		}
	}
	if slices.ContainsFunc(o.delays, func(d int) bool { return d > 0 }) {
		if e.toxiproxy, err = look("toxiproxy-server"); err != nil {
			return e, err
		}
	}
	// What this machine uses to reach the module proxy and the npm
	// registry, passed to the builds as build args.
	if out, err := exec.Command("go", "env", "GOPROXY", "GOSUMDB").Output(); err == nil {
		f := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(f) == 2 {
			e.goProxy, e.goSumDB = f[0], f[1]
		}
	}
	if out, err := exec.Command("npm", "config", "get", "registry").Output(); err == nil {
		e.npmRegistry = strings.TrimSpace(string(out))
	}
	return e, nil
}

func (o options) usesGHA() bool {
	return slices.Contains(o.configs, "gha") || slices.Contains(o.configs, "gha-stock")
}

// network is the stores as seen through one delay: byte-counting proxies,
// then toxiproxy (delay > 0), then the servers; and the harness's own
// gha cache emulator, whose blob URLs point at Azurite's proxy.
type network struct {
	delay    int
	registry string // host:port of the cache registry
	s3       string // s3 endpoint URL
	gha      string // the emulator's service URL
	counters map[string]*counter
}

type harness struct {
	opts    options
	env     env
	work    string
	bkcache string
	cfgFile string
	nets    map[int]*network
	procs   []*exec.Cmd
	proxies []*countingProxy
	tokens  map[string]string
	ctxs    map[string]string // suite/scenario → build context
	res     *results
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Since(h.res.Started).Round(time.Second), fmt.Sprintf(format, args...))
}

func newHarness(ctx context.Context, o options) (*harness, error) {
	e, err := loadEnv(o)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "bkcache-real-")
	if err != nil {
		return nil, err
	}
	h := &harness{opts: o, env: e, work: work, nets: map[int]*network{}, tokens: map[string]string{}, ctxs: map[string]string{},
		res: &results{RunID: rig.RunID(), Started: time.Now(), Runs: o.runs, SuiteRuns: o.suiteRuns, Suites: o.suites, Configs: o.configs, Scenarios: o.scenarios,
			Delays: o.delays, Commit: rig.GitCommit(), Machine: machine(e)}}
	ok := false
	defer func() {
		if !ok {
			h.close()
		}
	}()
	if err := h.prepare(ctx); err != nil {
		return nil, err
	}
	ok = true
	return h, nil
}

func (h *harness) close() {
	rig.Stop(h.procs)
	for _, p := range h.proxies {
		p.close()
	}
	if h.opts.keep {
		fmt.Fprintf(os.Stderr, "real: kept %s\n", h.work)
		return
	}
	os.RemoveAll(h.work)
}

// prepare builds a static bkcache (it is also the cache-mount helper that
// runs inside the builder), the build contexts, the proxies and emulators,
// and the buildkitd config that lets the builders reach the proxied
// registry over plain HTTP.
func (h *harness) prepare(ctx context.Context) error {
	h.bkcache = h.opts.bkcache
	if h.bkcache == "" {
		h.bkcache = filepath.Join(h.work, "bkcache")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", h.bkcache, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building bkcache: %w", err)
		}
	}
	for _, s := range h.opts.suites {
		if err := h.prepareContexts(ctx, s); err != nil {
			return fmt.Errorf("suite %s: %w", s, err)
		}
	}
	var toxAPI string
	if h.env.toxiproxy != "" {
		var err error
		if toxAPI, err = rig.FreeAddr(); err != nil {
			return err
		}
		port := toxAPI[strings.LastIndex(toxAPI, ":")+1:]
		tp := exec.CommandContext(ctx, h.env.toxiproxy, "-host", "127.0.0.1", "-port", port)
		if err := tp.Start(); err != nil {
			return fmt.Errorf("toxiproxy-server: %w", err)
		}
		h.procs = append(h.procs, tp)
		if err := rig.WaitHTTP(ctx, "http://"+toxAPI+"/version"); err != nil {
			return err
		}
	}
	for _, d := range h.opts.delays {
		n, err := h.startNetwork(ctx, d, toxAPI)
		if err != nil {
			return fmt.Errorf("delay %d ms: %w", d, err)
		}
		h.nets[d] = n
	}
	var cfg strings.Builder
	cfg.WriteString("[worker.oci]\n  enabled = true\n[worker.containerd]\n  enabled = false\n")
	hosts := []string{h.env.registry}
	for _, n := range h.nets {
		hosts = append(hosts, n.registry)
	}
	for _, host := range hosts {
		fmt.Fprintf(&cfg, "[registry.%q]\n  http = true\n  insecure = true\n", host)
	}
	h.cfgFile = filepath.Join(h.work, "buildkitd.toml")
	return os.WriteFile(h.cfgFile, []byte(cfg.String()), 0o644)
}

// startNetwork puts a counting proxy (and toxiproxy, for a delay) in front
// of the registry, the S3 gateway, Azurite and an emulator of its own.
func (h *harness) startNetwork(ctx context.Context, delay int, toxAPI string) (*network, error) {
	n := &network{delay: delay, counters: map[string]*counter{"registry": {}, "s3": {}, "gha": {}}}
	front := func(name, upstream string, c *counter) (string, error) {
		if delay > 0 {
			var err error
			if upstream, err = rig.Toxiproxy(toxAPI, fmt.Sprintf("%s-%d", name, delay), upstream, delay); err != nil {
				return "", err
			}
		}
		p, err := startCountingProxy(upstream, c)
		if err != nil {
			return "", err
		}
		h.proxies = append(h.proxies, p)
		return p.addr(), nil
	}
	var err error
	if n.registry, err = front("registry", h.env.registry, n.counters["registry"]); err != nil {
		return nil, err
	}
	if slices.Contains(h.opts.configs, "s3") {
		u, err := url.Parse(h.env.s3Endpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("BKCACHE_TEST_S3_ENDPOINT %q: not a URL", h.env.s3Endpoint)
		}
		if u.Host, err = front("s3", u.Host, n.counters["s3"]); err != nil {
			return nil, err
		}
		n.s3 = u.String()
	}
	if !h.opts.usesGHA() {
		return n, nil
	}
	az, err := url.Parse(h.env.azURL)
	if err != nil || az.Host == "" {
		return nil, fmt.Errorf("BKCACHE_TEST_AZURE_ACCOUNT_URL %q: not a URL", h.env.azURL)
	}
	blob := *az
	if blob.Host, err = front("azurite", az.Host, n.counters["gha"]); err != nil {
		return nil, err
	}
	emuAddr, err := rig.FreeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(h.work, fmt.Sprintf("gha-emulator-%d.log", delay)))
	if err != nil {
		return nil, err
	}
	emu := exec.CommandContext(ctx, h.env.ghaCLI, "serve", "--listen", emuAddr,
		"--blob-account-url", blob.String(), "--blob-account-name", h.env.azName, "--blob-account-key", h.env.azKey,
		"--container", fmt.Sprintf("real-%s-%d", h.res.RunID, delay), "--secret-file", h.env.ghaSecret)
	emu.Stdout, emu.Stderr = logf, logf
	if err := emu.Start(); err != nil {
		return nil, err
	}
	h.procs = append(h.procs, emu)
	if err := rig.WaitHTTP(ctx, "http://"+emuAddr+"/healthz"); err != nil {
		return nil, err
	}
	svc, err := front("emulator", emuAddr, n.counters["gha"])
	if err != nil {
		return nil, err
	}
	n.gha = "http://" + svc + "/"
	h.logf("delay %d ms: registry %s, s3 %s, gha %s (blobs %s)", delay, n.registry, n.s3, n.gha, blob.Host)
	return n, nil
}

// ---------------------------------------------------------------- contexts

// suiteInfo is how each real project is built and changed.
type suiteInfo struct {
	dir       string // build context in the repository
	prFile    string // the file a one-file PR changes
	prLine    string // appended to prFile (%s: the branch)
	steps     string // for the report
	buildArgs func(h *harness) []string
}

var suitesInfo = map[string]suiteInfo{
	"self": {dir: ".", prFile: "internal/buildjob/report.go", prLine: "\nvar _ = \"changed on branch %s\"\n",
		steps: "the root `Dockerfile`: `go mod download` under a `/go/pkg/mod` cache mount, `go build` of the CLI under that and a `/root/.cache/go-build` mount, a scratch image",
		buildArgs: func(h *harness) []string {
			a := []string{"GO_IMAGE=" + h.opts.goImage}
			if h.env.goProxy != "" {
				a = append(a, "GOPROXY="+h.env.goProxy)
			}
			if h.env.goSumDB != "" {
				a = append(a, "GOSUMDB="+h.env.goSumDB)
			}
			return a
		}},
	"node": {dir: "bench/testdata/node", prFile: "src/store.js", prLine: "// changed on branch %s\n",
		steps: "`bench/testdata/node/Dockerfile`: `npm ci` (486 packages) under a `/root/.npm` cache mount, lint, Jest and an esbuild bundle, a pruned production `node_modules`",
		buildArgs: func(h *harness) []string {
			a := []string{"NODE_IMAGE=" + h.opts.nodeImage}
			if h.env.npmRegistry != "" {
				a = append(a, "npm_config_registry="+h.env.npmRegistry)
			}
			return a
		}},
}

// The dependency each suite's bump adds.
const (
	selfBumpModule = "github.com/dustin/go-humanize@v1.0.1"
	nodeBumpDir    = "bump" // bench/testdata/node/bump: package.json and lock with dayjs added
)

// prepareContexts copies the suite's context for the default branch, the
// one-file PR and the dependency bump (not timed).
func (h *harness) prepareContexts(ctx context.Context, suite string) error {
	si := suitesInfo[suite]
	copyCtx := func(name string) (string, error) {
		dst := filepath.Join(h.work, "ctx", suite+"-"+name)
		if err := copyTree(ctx, si.dir, dst); err != nil {
			return "", err
		}
		h.ctxs[suite+"/"+name] = dst
		return dst, nil
	}
	if _, err := copyCtx("main"); err != nil {
		return err
	}
	if h.opts.has("pr") {
		dir, err := copyCtx("pr")
		if err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(dir, si.prFile), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(f, si.prLine, "pr-"+h.res.RunID)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if h.opts.has("bump") {
		dir, err := copyCtx("bump")
		if err != nil {
			return err
		}
		switch suite {
		case "self":
			mod, _, _ := strings.Cut(selfBumpModule, "@")
			src := "package main\n\n// The benchmark's dependency bump: one module added.\nimport _ \"" + mod + "\"\n"
			if err := os.WriteFile(filepath.Join(dir, "bump.go"), []byte(src), 0o644); err != nil {
				return err
			}
			cmd := exec.CommandContext(ctx, "go", "get", selfBumpModule)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go get %s: %w: %s", selfBumpModule, err, out)
			}
		case "node":
			for _, f := range []string{"package.json", "package-lock.json"} {
				b, err := os.ReadFile(filepath.Join(si.dir, nodeBumpDir, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// copyTree copies the files git knows of (tracked, or untracked and not
// ignored) under dir, as a checkout would have them.
func copyTree(ctx context.Context, dir, dst string) error {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "ls-files", "-z", "-co", "--exclude-standard", ".").Output()
	if err != nil {
		return fmt.Errorf("git ls-files %s: %w", dir, err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if f == "" {
			continue
		}
		src := filepath.Join(dir, f)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or a symlink
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------- builds

// measure runs, per suite and run, the no-cache build, then per delay and
// configuration the cold build and the scenarios that import its cache.
// Configurations take turns within a run, so a slow patch of the machine
// is spread over all of them. A failed build is recorded; the run goes on.
func (h *harness) measure(ctx context.Context) {
	o := h.opts
	n := 0
	for _, s := range o.suites {
		for _, c := range o.configs {
			if c == "nocache" {
				n += o.runsOf(s)
			} else {
				n += o.runsOf(s) * len(o.delays) * len(o.scenarios)
			}
		}
	}
	h.logf("run %s: %d builds (runs %s; suites %s; configs %s; scenarios %s; delays %v ms)", h.res.RunID, n, h.res.runsSpec(),
		strings.Join(o.suites, ","), strings.Join(o.configs, ","), strings.Join(o.scenarios, ","), o.delays)
	for _, suite := range h.opts.suites {
		for i := 1; i <= h.opts.runsOf(suite); i++ {
			for _, d := range h.opts.delays {
				for _, c := range h.opts.configs {
					if ctx.Err() != nil {
						return
					}
					if c == "nocache" {
						// No store: the delay changes nothing, so it runs once.
						if d == h.opts.delays[0] {
							h.noCache(ctx, suite, i)
						}
						continue
					}
					h.cached(ctx, suite, c, d, i)
				}
			}
		}
	}
}

// noCache is a plain build with no cache import or export, as a runner
// with no cache configured: every scenario of it is a cold build, so it is
// timed once per run and stands for all of them.
func (h *harness) noCache(ctx context.Context, suite string, run int) {
	s := sample{Suite: suite, Config: "nocache", Scenario: "cold", Delay: -1, Run: run, Hits: -1, Steps: -1}
	err := h.fresh(ctx, func(b *rig.Builder) error {
		argv := []string{h.env.buildctl, "--addr", b.Addr, "build", "--frontend", "dockerfile.v0",
			"--local", "context=" + h.ctxs[suite+"/main"], "--local", "dockerfile=" + h.ctxs[suite+"/main"],
			"--output", "type=image,name=" + h.image(suite, "nocache", "cold", -1, run) + ",push=true",
			"--progress", "plain"}
		for _, a := range suitesInfo[suite].buildArgs(h) {
			argv = append(argv, "--opt", "build-arg:"+a)
		}
		o := h.timed(ctx, argv, os.Environ(), fmt.Sprintf("%s-nocache-%d", suite, run))
		s.Seconds, s.Err = o.dur.Seconds(), o.errText()
		return nil
	})
	if err != nil {
		s.Err = err.Error()
	}
	h.add(s)
}

// store is one cache location: a cold build's, read by its scenarios.
type store struct {
	config string
	id     string // cache scope; part of every location
	net    *network
}

func (h *harness) cacheLine(st store) string {
	switch st.config {
	case "gha-stock":
		return "type=gha,dataplane=false"
	case "gha", "gha-eager":
		return "type=gha"
	case "registry":
		return "type=registry,ref=" + st.net.registry + "/bkcache-real/" + h.res.RunID
	default: // s3
		e := h.env
		return "type=s3,bucket=" + e.s3Bucket + ",region=" + e.s3Region + ",endpoint_url=" + st.net.s3 +
			",use_path_style=true,access_key_id=" + e.s3Access + ",secret_access_key=" + e.s3Secret + ",prefix=bkcache-real/" + st.id + "/"
	}
}

// storeOf is the counter name of a configuration's store.
func storeOf(config string) string {
	if strings.HasPrefix(config, "gha") {
		return "gha"
	}
	return config
}

// cached runs the cold build of one configuration into a new store, then
// each selected scenario on its own fresh builder importing that store.
func (h *harness) cached(ctx context.Context, suite, config string, delay, run int) {
	st := store{config: config, id: fmt.Sprintf("%s-%s-%s-d%d-%d", h.res.RunID, suite, config, delay, run), net: h.nets[delay]}
	for _, sc := range h.opts.scenarios {
		ref, ctxName := "refs/heads/main", "main"
		switch sc {
		case "pr":
			ref, ctxName = fmt.Sprintf("refs/heads/pr-%d", run), "pr"
		case "bump":
			ref, ctxName = fmt.Sprintf("refs/heads/bump-%d", run), "bump"
		}
		s := sample{Suite: suite, Config: config, Scenario: sc, Delay: delay, Run: run, Hits: -1, Steps: -1}
		err := h.fresh(ctx, func(b *rig.Builder) error {
			argv := []string{h.bkcache, "build", "--builder", b.Addr, "--ref", ref, "--default-branch", "main",
				"--cache", h.cacheLine(st), "--cache-scope", st.id, "--progress", "plain",
				"--tags", h.image(suite, config, sc, delay, run), "--push"}
			if config == "gha-stock" {
				argv = append(argv, "--cache-mounts", "none")
			}
			for _, a := range suitesInfo[suite].buildArgs(h) {
				argv = append(argv, "--build-args", a)
			}
			argv = append(argv, h.ctxs[suite+"/"+ctxName])
			envv, err := h.bkcacheEnv(ctx, st, ref)
			if err != nil {
				return err
			}
			c := st.net.counters[storeOf(config)]
			up0, down0 := c.read()
			o := h.timed(ctx, argv, envv, fmt.Sprintf("%s-%s-%s-d%d-%d", suite, config, sc, delay, run))
			up1, down1 := c.read()
			s.Seconds, s.Hits, s.Steps, s.Err = o.dur.Seconds(), o.hits, o.steps, o.errText()
			s.Up, s.Down, s.MountSeconds, s.Mounts = up1-up0, down1-down0, o.mountSecs, o.mounts
			return nil
		})
		if err != nil {
			s.Err = err.Error()
		}
		h.add(s)
		if sc == "cold" && s.Err != "" {
			return // nothing to import
		}
	}
}

// bkcacheEnv is the environment of a bkcache run: ours without anything a
// runner would set, plus the runtime variables for gha, with a token that
// writes the build's ref and reads it and the default branch.
func (h *harness) bkcacheEnv(ctx context.Context, st store, ref string) ([]string, error) {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GITHUB_") || strings.HasPrefix(k, "ACTIONS_") || strings.HasPrefix(k, "RUNNER_") || k == "BUILDKIT_HOST" || k == "BKCACHE_CACHE_DIR" || k == "BKCACHE_MOUNT_RESTORE" {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "BKCACHE_CACHE_DIR="+filepath.Join(h.work, "default-cache"))
	if st.config == "gha-eager" {
		// The restore before the build, as bkcache did before the lazy
		// restore became its default.
		out = append(out, "BKCACHE_MOUNT_RESTORE=eager")
	}
	if storeOf(st.config) != "gha" {
		return out, nil
	}
	key := fmt.Sprint(st.net.delay, ref)
	tok, ok := h.tokens[key]
	if !ok {
		args := []string{"token", "--secret-file", h.env.ghaSecret, "--repo", "bkcache/real", "--write", ref, "--read", ref}
		if ref != "refs/heads/main" {
			args = append(args, "--read", "refs/heads/main")
		}
		b, err := exec.CommandContext(ctx, h.env.ghaCLI, args...).Output()
		if err != nil {
			return nil, fmt.Errorf("gha-cache-emulator token: %w", err)
		}
		tok = strings.TrimSpace(string(b))
		h.tokens[key] = tok
	}
	return append(out, "ACTIONS_RUNTIME_TOKEN="+tok, "ACTIONS_RESULTS_URL="+st.net.gha, "ACTIONS_CACHE_SERVICE_V2=true"), nil
}

func (h *harness) image(suite, config, scenario string, delay, run int) string {
	return fmt.Sprintf("%s/bkcache-real-img/%s/%s-%s-%s-d%d-%d:latest", h.env.registry, h.res.RunID, suite, config, scenario, max(delay, 0), run)
}

func (h *harness) add(s sample) {
	h.res.Samples = append(h.res.Samples, s)
	status := fmt.Sprintf("%.1fs", s.Seconds)
	if s.Steps >= 0 {
		status += fmt.Sprintf(" hits %d/%d", s.Hits, s.Steps)
	}
	if s.Up+s.Down > 0 {
		status += fmt.Sprintf(" store ↑%.1fMB ↓%.1fMB", float64(s.Up)/1e6, float64(s.Down)/1e6)
	}
	if s.MountSeconds > 0 {
		status += fmt.Sprintf(" mounts %.1fs", s.MountSeconds)
	}
	if s.Err != "" {
		status += " ERROR " + s.Err
	}
	h.logf("%-5s %-9s %-5s d%-3d #%d %s", s.Suite, s.Config, s.Scenario, max(s.Delay, 0), s.Run, status)
}

// outcome is what one timed process gave.
type outcome struct {
	dur         time.Duration
	hits, steps int
	mountSecs   float64
	mounts      []string
	err         error
}

func (o outcome) errText() string {
	if o.err == nil {
		return ""
	}
	return o.err.Error()
}

var (
	// bkcache's summary of each cache mount after the build:
	// "cache mount ID: restored from … in 1.2s; saved to … in 3.4s".
	mountLine = regexp.MustCompile(`(?m)^cache mount ([^:\n]+): ([^\n]*; [^\n]*)$`)
	mountTime = regexp.MustCompile(` in ((?:[0-9.]+(?:ns|µs|ms|s|m|h))+)`)
)

// timed runs argv and measures its wall time; its output goes to a log in
// the work directory. Hits are bkcache's cache-hits and cache-steps
// outputs, which it counts from BuildKit's status stream.
func (h *harness) timed(ctx context.Context, argv, envv []string, name string) outcome {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = envv
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	err := cmd.Run()
	o := outcome{dur: time.Since(start), hits: -1, steps: -1}
	logPath := filepath.Join(h.work, "logs", name+".log")
	_ = os.MkdirAll(filepath.Dir(logPath), 0o755)
	_ = os.WriteFile(logPath, append(stdout.Bytes(), stderr.Bytes()...), 0o644)
	if err != nil {
		o.err = fmt.Errorf("%s: %w: %s", filepath.Base(argv[0]), err, rig.LastLines(stderr.String(), 3))
		return o
	}
	o.hits, o.steps = rig.CacheHits(stdout.String())
	for _, m := range mountLine.FindAllStringSubmatch(stderr.String(), -1) {
		o.mounts = append(o.mounts, m[1]+": "+m[2])
	}
	o.mountSecs = mountSeconds(o.mounts)
	return o
}

// mountSeconds is the time the mount phases took, from bkcache's summary
// of each mount ("ID: restored from … in 1.2s; saved to … in 3.4s").
// Restore and save each run one helper build for all mounts, so every
// mount reports the restore batch's whole time, and its save as the
// shared pack plus its own upload: a sum over mounts would count the
// batch once per mount. The restore counts once (the longest), the save
// as the longest mount's (its pack and upload; a lower bound, as the
// other mounts' uploads follow it).
func mountSeconds(mounts []string) float64 {
	var restore, save float64
	for _, m := range mounts {
		for _, part := range strings.Split(m, "; ") {
			t := mountTime.FindStringSubmatch(part)
			if t == nil {
				continue
			}
			d, err := time.ParseDuration(t[1])
			if err != nil {
				continue
			}
			switch {
			case strings.Contains(part, "restored from "):
				restore = max(restore, d.Seconds())
			case strings.Contains(part, "saved to "):
				save = max(save, d.Seconds())
			}
		}
	}
	return restore + save
}

// machine describes where the run happened.
func machine(e env) map[string]string {
	m := map[string]string{}
	if out, err := exec.Command("nproc").Output(); err == nil {
		m["cores"] = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m["go"] = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command(e.buildkitd, "--version").Output(); err == nil {
		m["buildkit"] = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m["load at start"] = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return m
}
