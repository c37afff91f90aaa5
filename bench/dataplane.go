package main

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bkcache/bkcache/bench/internal/rig"
)

// The gha data-plane comparison (issue 11): backend "gha" is bkcache's
// session data plane (dataplane=true, pinned: the default for type=gha is
// the cache endpoint since issue 25), "gha-stock" is BuildKit's own gha
// exporter (dataplane=false) with the same scopes, "gha-endpoint" is
// BuildKit's own gha backend through bkcache's cache endpoint
// (dataplane=endpoint, the default). For all three, the harness runs its own
// gha-cache-emulator, whose request log counts the API calls and uploads
// of each build; with -delay-ms it puts toxiproxy, adding that
// latency each way, in front of Azurite and of the emulator.

// isGHA reports whether backend talks to the Actions cache.
func isGHA(backend string) bool {
	return backend == "gha" || backend == "gha-stock" || backend == "gha-endpoint"
}

// backendType is the cache line's type= for a bench backend.
func backendType(backend string) string {
	if isGHA(backend) {
		return "gha"
	}
	return backend
}

// backendExtra are the attributes a bench backend adds to its cache line.
func backendExtra(backend string) map[string]string {
	switch backend {
	case "gha":
		return map[string]string{"dataplane": "true"}
	case "gha-stock":
		return map[string]string{"dataplane": "false"}
	case "gha-endpoint":
		return map[string]string{"dataplane": "endpoint"}
	}
	return nil
}

// ghaService is the harness's own emulator (and toxiproxy, if delayed).
type ghaService struct {
	log   string // the emulator's request log
	procs []*exec.Cmd
}

// startGHA starts the emulator (behind toxiproxy when delayMS > 0) and
// points h.env.ghaURL at it.
func (h *harness) startGHA(ctx context.Context) error {
	az, err := url.Parse(h.env.azURL)
	if err != nil || az.Host == "" {
		return fmt.Errorf("BKCACHE_TEST_AZURE_ACCOUNT_URL %q: not a URL", h.env.azURL)
	}
	g := &ghaService{log: filepath.Join(h.work, "gha-emulator.log")}
	h.gha = g
	emuAddr, err := freeAddr()
	if err != nil {
		return err
	}
	blobURL, serviceAddr := *az, emuAddr
	if h.opts.delayMS > 0 {
		api, err := freeAddr()
		if err != nil {
			return err
		}
		tp := exec.CommandContext(ctx, "toxiproxy-server", "-host", "127.0.0.1", "-port", strings.Split(api, ":")[1])
		tp.Stdout, tp.Stderr = nil, nil
		if err := tp.Start(); err != nil {
			return fmt.Errorf("toxiproxy-server (source .testenv/env): %w", err)
		}
		g.procs = append(g.procs, tp)
		if err := waitHTTP(ctx, "http://"+api+"/version"); err != nil {
			return err
		}
		azProxy, err := h.toxiproxy(api, "azurite", az.Host)
		if err != nil {
			return err
		}
		blobURL.Host = azProxy
		if serviceAddr, err = h.toxiproxy(api, "emulator", emuAddr); err != nil {
			return err
		}
	}
	logf, err := os.Create(g.log)
	if err != nil {
		return err
	}
	emu := exec.CommandContext(ctx, h.env.ghaCLI, "serve", "--listen", emuAddr,
		"--blob-account-url", blobURL.String(), "--blob-account-name", h.env.azName, "--blob-account-key", h.env.azKey,
		"--container", "bench-"+h.id, "--secret-file", h.env.ghaSecretFile)
	emu.Stdout, emu.Stderr = logf, logf
	if err := emu.Start(); err != nil {
		return err
	}
	g.procs = append(g.procs, emu)
	if err := waitHTTP(ctx, "http://"+emuAddr+"/healthz"); err != nil {
		return err
	}
	h.env.ghaURL = "http://" + serviceAddr + "/"
	h.logf("gha: own emulator on %s (service URL %s, blobs %s, delay %d ms each way)", emuAddr, h.env.ghaURL, blobURL.Host, h.opts.delayMS)
	return nil
}

// toxiproxy creates a proxy to upstream with delayMS latency each way and
// returns its listen address.
func (h *harness) toxiproxy(api, name, upstream string) (string, error) {
	return rig.Toxiproxy(api, name, upstream, h.opts.delayMS)
}

func (g *ghaService) stop() { rig.Stop(g.procs) }

// requestLines is how many requests the emulator has logged.
func (g *ghaService) requestLines() (api, uploads int) {
	f, err := os.Open(g.log)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "/twirp/") || strings.Contains(l, "/_apis/") {
			api++
		}
		if strings.Contains(l, "CreateCacheEntry") {
			uploads++
		}
	}
	return api, uploads
}

// dataPlaneSection is the report's gha data-plane table: per suite and
// backend, export cost (cold minus cold without export), the three warm
// builds' times and hits,
// the cache-service API calls and uploads of the cold and the warm (a
// re-export of an unchanged build) runs, and bkcache's peak RSS.
func (h *harness) dataPlaneSection() string {
	var have bool
	for _, s := range h.samples {
		have = have || s.Backend == "gha-stock"
	}
	if !have {
		return ""
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n## 6. gha data plane (delay %d ms each way)\n\n", h.opts.delayMS)
	w("Warm builds on fresh builders: new repo (`warm`), same repo (`warm-samerepo`, the layers already there), no output (`warm-nooutput`, a PR check).\n\n")
	w("| Suite | Backend | Cold | Export cost | Warm, new repo | Warm, same repo | Warm, no output | Warm hits (new, same, none) | API calls cold / warm | Uploads cold / warm | Peak RSS cold / warm |\n")
	w("|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, suite := range h.opts.suites {
		noexp := h.time(filter{scenario: "cold-noexport", suite: suite})
		for _, backend := range h.opts.backends {
			cold := h.time(filter{scenario: "cold", suite: suite, backend: backend})
			cost := "–"
			if cold.ok() && noexp.ok() {
				cost = fmt.Sprintf("%+.2fs", cold.median-noexp.median)
			}
			var warms, hits []string
			for _, wv := range warmVariants {
				f := filter{scenario: wv.scenario, suite: suite, backend: backend}
				warms = append(warms, h.time(f).secs())
				hits = append(hits, h.hitText(f))
			}
			w("| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n", suite, backend, cold.secs(), cost,
				strings.Join(warms, " | "), strings.Join(hits, ", "),
				h.calls(suite, backend, false), h.calls(suite, backend, true),
				h.rss(filter{scenario: "cold", suite: suite, backend: backend}), h.rss(filter{scenario: "warm", suite: suite, backend: backend}))
		}
	}
	return b.String()
}

// calls is "cold / warm" API calls (uploads when uploads is set), the
// highest over runs; "–" for backends that do not use the Actions cache.
func (h *harness) calls(suite, backend string, uploads bool) string {
	if !isGHA(backend) {
		return "–"
	}
	out := []string{}
	for _, sc := range []string{"cold", "warm"} {
		n := -1
		for _, s := range h.pick(filter{scenario: sc, suite: suite, backend: backend}) {
			v := s.APICalls
			if uploads {
				v = s.Uploads
			}
			n = max(n, v)
		}
		if n < 0 {
			out = append(out, "–")
		} else {
			out = append(out, fmt.Sprint(n))
		}
	}
	return strings.Join(out, " / ")
}
