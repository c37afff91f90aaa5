// Package config turns the action's inputs into a validated Config.
//
// It is pure: inputs arrive through a lookup function, so the GitHub
// Action (INPUT_<NAME> variables read by go-githubactions) and the CLI
// (flags named like the inputs) share one parser and one set of errors.
package config

import (
	"encoding/csv"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/bkcache/bkcache/buildkit"
	units "github.com/docker/go-units"
)

// Input names, as written in action.yml. The ones shared with
// docker/build-push-action keep its names and meaning.
const (
	InputContext      = "context"
	InputFile         = "file"
	InputTarget       = "target"
	InputBuildArgs    = "build-args"
	InputTags         = "tags"
	InputLabels       = "labels"
	InputPush         = "push"
	InputOutputs      = "outputs"
	InputPlatforms    = "platforms"
	InputSecrets      = "secrets"
	InputNoCache      = "no-cache"
	InputPull         = "pull"
	InputBuilder      = "builder"
	InputCacheFrom    = "cache-from"
	InputCacheTo      = "cache-to"
	InputCache        = "cache"
	InputCacheScope   = "cache-scope"
	InputDryRun       = "dry-run"
	InputProgress     = "progress"
	InputCacheCleanup = "cache-cleanup"
	InputGitHubToken  = "github-token"
	InputUntrusted    = "allow-untrusted-export"
	InputDefaultBr    = "default-branch"
	InputSecretFiles  = "secret-files"
	InputSecretEnvs   = "secret-envs"
	InputCacheMounts  = "cache-mounts"
	InputMountsMax    = "cache-mounts-max-size"
)

// Inputs lists every input name, for help text and for the tests that keep
// action.yml in step with the parser.
var Inputs = []string{
	InputContext, InputFile, InputTarget, InputBuildArgs, InputTags, InputLabels,
	InputPush, InputOutputs, InputPlatforms, InputSecrets, InputNoCache, InputPull,
	InputBuilder, InputCacheFrom, InputCacheTo, InputCache, InputCacheScope,
	InputDryRun, InputProgress, InputCacheCleanup, InputGitHubToken, InputUntrusted,
	InputDefaultBr, InputSecretFiles, InputSecretEnvs, InputCacheMounts, InputMountsMax,
}

// Config is everything the action was asked to do.
type Config struct {
	Context   string
	File      string
	Target    string
	BuildArgs map[string]string
	Labels    map[string]string
	Tags      []string
	Push      bool
	Outputs   []string
	Platforms []string
	Secrets   []Secret // secrets, secret-files and secret-envs
	NoCache   bool
	Pull      bool
	Builder   string

	CacheFrom  []string // explicit buildx entries, passed through
	CacheTo    []string
	Cache      []string // one store per line; expanded per scope
	CacheScope string

	DryRun        bool
	Progress      string
	CacheCleanup  bool
	GitHubToken   string
	AllowUntrust  bool
	DefaultBranch string

	// CacheMounts is "auto", "none", or the ids of the Dockerfile cache
	// mounts to carry; CacheMountsMaxSize caps one mount's file data.
	CacheMounts        []string
	CacheMountsMaxSize int64
}

// DefaultCacheMountsMaxSize keeps one mount well inside the Actions cache's
// 10 GB per repository.
const DefaultCacheMountsMaxSize = 2 << 30

// Parse reads and validates every input. get returns the raw value of an
// input ("" when unset).
func Parse(get func(name string) string) (Config, error) {
	p := parser{get: get}
	c := Config{
		Context:       p.str(InputContext, "."),
		File:          p.str(InputFile, ""),
		Target:        p.str(InputTarget, ""),
		BuildArgs:     p.keyValues(InputBuildArgs),
		Labels:        p.keyValues(InputLabels),
		Tags:          p.list(InputTags, true),
		Push:          p.boolean(InputPush, false),
		Outputs:       p.list(InputOutputs, false),
		Platforms:     p.list(InputPlatforms, true),
		NoCache:       p.boolean(InputNoCache, false),
		Pull:          p.boolean(InputPull, false),
		Builder:       p.str(InputBuilder, ""),
		CacheFrom:     p.list(InputCacheFrom, false),
		CacheTo:       p.list(InputCacheTo, false),
		Cache:         p.list(InputCache, false),
		CacheScope:    p.str(InputCacheScope, ""),
		DryRun:        p.boolean(InputDryRun, false),
		Progress:      p.oneOf(InputProgress, "auto", buildkit.ProgressModes),
		CacheCleanup:  p.boolean(InputCacheCleanup, false),
		GitHubToken:   p.str(InputGitHubToken, ""),
		AllowUntrust:  p.boolean(InputUntrusted, false),
		DefaultBranch: p.str(InputDefaultBr, ""),

		CacheMounts:        p.cacheMounts(),
		CacheMountsMaxSize: p.size(InputMountsMax, DefaultCacheMountsMaxSize),
	}
	if p.err != nil {
		return Config{}, p.err
	}
	var err error
	if c.Secrets, err = parseSecrets(get); err != nil {
		return Config{}, err
	}
	if c.CacheCleanup && c.GitHubToken == "" {
		return Config{}, fmt.Errorf("input %q needs input %q (a token with actions: write)", InputCacheCleanup, InputGitHubToken)
	}
	if c.Push && len(c.Tags) == 0 && !hasImageOutput(c.Outputs) {
		return Config{}, fmt.Errorf("input %q is true but no %q are set: name the image to push", InputPush, InputTags)
	}
	return c, nil
}

func hasImageOutput(outputs []string) bool {
	for _, o := range outputs {
		if strings.Contains(o, "type=image") || strings.Contains(o, "type=registry") {
			return true
		}
	}
	return false
}

// HasImageOutput reports whether the build produces an image (tags or an
// image/registry output), which inline cache needs.
func (c Config) HasImageOutput() bool { return len(c.Tags) > 0 || hasImageOutput(c.Outputs) }

// SecretValues returns input values that must be masked in logs: the
// GitHub token and the secrets given by value.
func (c Config) SecretValues() []string {
	var s []string
	if c.GitHubToken != "" {
		s = append(s, c.GitHubToken)
	}
	for _, sec := range c.Secrets {
		if sec.Value != "" {
			s = append(s, sec.Value)
		}
	}
	return s
}

type parser struct {
	get func(string) string
	err error
}

func (p *parser) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

func (p *parser) str(name, def string) string {
	v := strings.TrimSpace(p.get(name))
	if v == "" {
		return def
	}
	if strings.ContainsAny(v, "\r\n") {
		p.fail(fmt.Errorf("input %q: must be a single line", name))
	}
	return v
}

// boolean accepts what @actions/core getBooleanInput accepts (the YAML 1.2
// core schema), so inputs behave as in every other action.
func (p *parser) boolean(name string, def bool) bool {
	v := strings.TrimSpace(p.get(name))
	switch v {
	case "":
		return def
	case "true", "True", "TRUE":
		return true
	case "false", "False", "FALSE":
		return false
	}
	p.fail(fmt.Errorf("input %q: %q is not a boolean (allowed: true, false)", name, v))
	return def
}

func (p *parser) oneOf(name, def string, allowed []string) string {
	v := p.str(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.fail(fmt.Errorf("input %q: %q is not allowed (allowed: %s)", name, v, strings.Join(allowed, ", ")))
	return def
}

// list splits an input the way docker/build-push-action's getInputList
// does: one item per line, and, where commas may separate items, CSV
// fields (quoted fields keep their commas). Blank lines and lines starting
// with '#' are ignored.
func (p *parser) list(name string, commas bool) []string {
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(p.get(name), "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !commas {
			out = append(out, line)
			continue
		}
		r := csv.NewReader(strings.NewReader(line))
		r.TrimLeadingSpace = true
		fields, err := r.Read()
		if err != nil {
			p.fail(fmt.Errorf("input %q: line %q: %w", name, line, err))
			return nil
		}
		for _, f := range fields {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}

func (p *parser) keyValues(name string) map[string]string {
	var m map[string]string
	for i, line := range strings.Split(strings.ReplaceAll(p.get(name), "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// Build args carry tokens often enough that an error names the
		// line and the key, never the text: a value the runner does not
		// mask must not reach the log through a typo.
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		switch {
		case !ok:
			p.fail(fmt.Errorf("input %q line %d: want KEY=VALUE; the line has no '='", name, i+1))
			return nil
		case k == "":
			p.fail(fmt.Errorf("input %q line %d: want KEY=VALUE; the key is empty", name, i+1))
			return nil
		}
		if m == nil {
			m = map[string]string{}
		}
		m[k] = v
	}
	return m
}

// cacheMounts reads the cache-mounts input: auto (the default), none, or a
// list of mount ids.
func (p *parser) cacheMounts() []string {
	ids := p.list(InputCacheMounts, true)
	if len(ids) == 0 {
		return []string{"auto"}
	}
	if len(ids) > 1 && (slices.Contains(ids, "auto") || slices.Contains(ids, "none")) {
		p.fail(fmt.Errorf("input %q: auto and none stand alone (allowed: auto, none, or a list of cache mount ids)", InputCacheMounts))
	}
	return ids
}

// size reads a byte count such as 500MB or 2GiB (docker's units).
func (p *parser) size(name string, def int64) int64 {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	n, err := units.RAMInBytes(v)
	if err != nil || n <= 0 {
		p.fail(fmt.Errorf("input %q: %q is not a size (allowed: a positive size such as 500MB or 2GiB)", name, v))
		return def
	}
	return n
}

// SortedKeys returns the keys of m in order, for deterministic output.
func SortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
