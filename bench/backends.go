package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// store is one cache location of one measurement. id is unique within the
// run and the run id is unique across runs, so no measurement sees another
// one's cache.
type store struct {
	backend string
	id      string            // bkcache --cache-scope, and part of the location
	extra   map[string]string // export options, e.g. mode=min, compression=zstd
}

// scopeName is what bkcache calls the scope of branch in this store: the
// registry tag, local directory, s3/azblob name ("<cache-scope>_<branch>").
func (s store) scopeName(branch string) string { return s.id + "_" + branch }

func (h *harness) registryCacheRepo() string { return h.env.registry + "/bkcache-bench/" + h.id }

func (h *harness) localDir(s store) string { return filepath.Join(h.work, "local", s.id) }

func (h *harness) objectPrefix(s store) string { return "bkcache-bench/" + s.id + "/" }

// location holds the attributes that say where a backend keeps the cache.
func (h *harness) location(s store) map[string]string {
	e := h.env
	switch s.backend {
	case "registry":
		return map[string]string{"ref": h.registryCacheRepo()}
	case "local":
		return map[string]string{"dest": h.localDir(s)}
	case "s3":
		return map[string]string{"bucket": e.s3Bucket, "region": e.s3Region, "endpoint_url": e.s3Endpoint,
			"use_path_style": "true", "access_key_id": e.s3Access, "secret_access_key": e.s3Secret, "prefix": h.objectPrefix(s)}
	case "azblob":
		return map[string]string{"account_url": e.azURL, "account_name": e.azName, "secret_access_key": e.azKey, "prefix": h.objectPrefix(s)}
	default: // gha: where comes from the runtime token and URL
		return map[string]string{}
	}
}

// cacheLine is the bkcache --cache input for s.
func (h *harness) cacheLine(s store) string {
	a := h.location(s)
	maps.Copy(a, backendExtra(s.backend))
	maps.Copy(a, s.extra)
	return csv(backendType(s.backend), a)
}

// handWritten are the buildctl --import-cache and --export-cache values a
// user would write by hand for a build of the default branch: what bkcache
// plans for it, spelled out.
func (h *harness) handWritten(s store, ghaToken string) (imp, exp string) {
	name := s.scopeName("main")
	in := h.location(s)
	switch backendType(s.backend) {
	case "registry":
		in["ref"] += ":" + name
	case "local":
		delete(in, "dest")
		in["src"] = filepath.Join(h.localDir(s), name)
	case "s3", "azblob":
		in["name"] = name
	case "gha":
		in["scope"] = s.id
		in["token"] = ghaToken
		in["url"] = h.env.ghaURL
		in["url_v2"] = h.env.ghaURL
		in["version"] = "2"
	}
	out := maps.Clone(in)
	if s.backend == "local" {
		delete(out, "src")
		out["dest"] = filepath.Join(h.localDir(s), name)
	}
	out["mode"] = "max"
	out["ignore-error"] = "true"
	maps.Copy(out, s.extra)
	return csv(backendType(s.backend), in), csv(backendType(s.backend), out)
}

// csv writes a cache entry in buildx syntax, type first, keys sorted.
func csv(typ string, attrs map[string]string) string {
	parts := []string{"type=" + typ}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		v := attrs[k]
		if strings.ContainsAny(v, `,"`) {
			v = `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

// comparable reduces an entry to what bkcache plan prints: secrets as ***,
// and without the gha attributes the runtime fills in at build time.
func comparable(entry string) string {
	typ, attrs := splitCSV(entry)
	for _, k := range []string{"access_key_id", "secret_access_key", "session_token", "token", "ghtoken"} {
		if _, ok := attrs[k]; ok {
			attrs[k] = "***"
		}
	}
	if typ == "gha" {
		for _, k := range []string{"token", "url", "url_v2", "version"} {
			delete(attrs, k)
		}
	}
	return csv(typ, attrs)
}

func splitCSV(entry string) (string, map[string]string) {
	attrs := map[string]string{}
	typ := ""
	for _, f := range strings.Split(entry, ",") {
		k, v, _ := strings.Cut(f, "=")
		if k == "type" {
			typ = v
			continue
		}
		attrs[k] = v
	}
	return typ, attrs
}

// planEntries runs `bkcache plan` and returns the first cache-from and
// cache-to entries it prints.
func planEntries(out string) (from, to []string) {
	var cur *[]string
	sc := bufio.NewScanner(strings.NewReader(out))
	seen := map[string]bool{}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case (line == "cache-from:" || line == "cache-to:") && !seen[line]:
			seen[line] = true
			if line == "cache-from:" {
				cur = &from
			} else {
				cur = &to
			}
		case strings.HasPrefix(line, "  ") && cur != nil:
			*cur = append(*cur, strings.TrimSpace(line))
		default:
			cur = nil
		}
	}
	return from, to
}

// cacheSize reads how many bytes the cache of s takes where the backend
// keeps it, or -1 when this backend's size is not read (azblob, gha).
func (h *harness) cacheSize(ctx context.Context, s store) int64 {
	switch s.backend {
	case "registry":
		n, err := registrySize(ctx, h.env.registry, "bkcache-bench/"+h.id, s.scopeName("main"))
		if err != nil {
			h.logf("warning: cache size: %v", err)
			return -1
		}
		return n
	case "local":
		return dirSize(h.localDir(s))
	case "s3":
		return dirSize(filepath.Join(h.env.s3Root, h.env.s3Bucket, strings.TrimSuffix(h.objectPrefix(s), "/")))
	}
	return -1
}

func dirSize(dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		return -1
	}
	return n
}

// registrySize sums the descriptors of the cache manifest (an index of
// layers and the cache config, or an image manifest with image-manifest=true).
func registrySize(ctx context.Context, registry, repo, tag string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+registry+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.oci.image.index.v1+json",
		"application/vnd.docker.distribution.manifest.list.v2+json",
		"application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.v2+json",
	}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading cache manifest %s:%s: %w", repo, tag, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("reading cache manifest %s:%s: %s", repo, tag, resp.Status)
	}
	type desc struct {
		Size int64 `json:"size"`
	}
	var m struct {
		Config    *desc  `json:"config"`
		Layers    []desc `json:"layers"`
		Manifests []desc `json:"manifests"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return 0, fmt.Errorf("decoding cache manifest %s:%s: %w", repo, tag, err)
	}
	var n int64
	if m.Config != nil {
		n += m.Config.Size
	}
	for _, d := range append(m.Layers, m.Manifests...) {
		n += d.Size
	}
	return n, nil
}

// ghaToken asks the emulator for a runtime token that writes ref and reads
// ref and reads.
func (h *harness) ghaToken(ctx context.Context, ref string, reads ...string) (string, error) {
	key := ref + " " + strings.Join(reads, " ")
	if t, ok := h.tokens[key]; ok {
		return t, nil
	}
	args := []string{"token", "--secret-file", h.env.ghaSecretFile, "--repo", "bkcache/bench", "--write", ref, "--read", ref}
	for _, r := range reads {
		args = append(args, "--read", r)
	}
	out, err := exec.CommandContext(ctx, h.env.ghaCLI, args...).Output()
	if err != nil {
		return "", fmt.Errorf("gha-cache-emulator token: %w", err)
	}
	t := strings.TrimSpace(string(out))
	if h.tokens == nil {
		h.tokens = map[string]string{}
	}
	h.tokens[key] = t
	return t, nil
}

// bkcacheEnv is the environment of a bkcache run: ours without anything a
// runner would set, plus the runtime variables for gha.
func (h *harness) bkcacheEnv(ghaToken string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GITHUB_") || strings.HasPrefix(k, "ACTIONS_") || strings.HasPrefix(k, "RUNNER_") || k == "BUILDKIT_HOST" {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "BKCACHE_CACHE_DIR="+filepath.Join(h.work, "default-cache"))
	if ghaToken != "" {
		out = append(out, "ACTIONS_RUNTIME_TOKEN="+ghaToken, "ACTIONS_RESULTS_URL="+h.env.ghaURL, "ACTIONS_CACHE_SERVICE_V2=true")
	}
	return out
}
