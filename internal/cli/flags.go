package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/bkcache/bkcache/internal/config"
)

// inputFlags registers one flag per action input, named like the input, so
// `bkcache build --cache-scope app` means what `cache-scope: app` means in a
// workflow. Repeated list flags are joined by newlines, as a multi-line
// input would be.
type inputFlags struct {
	fs     *flag.FlagSet
	values map[string]*multiValue
	bools  map[string]*bool

	// CLI-only: the event a run outside GitHub stands for.
	ref   string
	event string
}

var listInputs = map[string]bool{
	config.InputBuildArgs: true, config.InputTags: true, config.InputLabels: true,
	config.InputOutputs: true, config.InputPlatforms: true, config.InputSecrets: true,
	config.InputCacheFrom: true, config.InputCacheTo: true, config.InputCache: true,
	config.InputCacheMounts: true,
}

var boolInputs = map[string]bool{
	config.InputPush: true, config.InputNoCache: true, config.InputPull: true,
	config.InputDryRun: true, config.InputCacheCleanup: true, config.InputUntrusted: true,
}

var inputHelp = map[string]string{
	config.InputContext:      "build context `path` (default .)",
	config.InputFile:         "Dockerfile `path` (default CONTEXT/Dockerfile)",
	config.InputTarget:       "build `stage`",
	config.InputBuildArgs:    "build-time variable `KEY=VALUE` (repeatable)",
	config.InputTags:         "image `tag` (repeatable)",
	config.InputLabels:       "image label `KEY=VALUE` (repeatable)",
	config.InputPush:         "push the image (needs --tags)",
	config.InputOutputs:      "buildx output `entry`, e.g. type=local,dest=out (repeatable)",
	config.InputPlatforms:    "target `platform` (repeatable)",
	config.InputSecrets:      "build secret id=NAME,src=PATH or id=NAME,env=VAR (repeatable)",
	config.InputNoCache:      "do not use any cache",
	config.InputPull:         "always pull base images",
	config.InputBuilder:      "BuildKit `address` (default $BUILDKIT_HOST, then the current buildx builder)",
	config.InputCacheFrom:    "extra cache import `entry` in buildx syntax (repeatable)",
	config.InputCacheTo:      "extra cache export `entry` in buildx syntax (repeatable)",
	config.InputCache:        "cache store `line`, e.g. type=registry,ref=HOST/REPO (repeatable; default: a local directory)",
	config.InputCacheScope:   "`name` of this build's cache",
	config.InputDryRun:       "print the plan, build nothing",
	config.InputProgress:     "progress `mode`: auto, plain, rawjson, quiet",
	config.InputCacheCleanup: "delete superseded gha cache entries (needs --github-token)",
	config.InputGitHubToken:  "GitHub `token` for cache reports and cleanup",
	config.InputUntrusted:    "let untrusted events export to their own PR scope",
	config.InputDefaultBr:    "default `branch` to import from (default: origin's HEAD, if known)",
	config.InputCacheMounts:  "Dockerfile cache `mounts` to carry: auto, none, or mount ids (repeatable)",
	config.InputMountsMax:    "largest cache mount `size` to save, e.g. 500MB (default 2GiB)",
}

type multiValue struct {
	vals []string
	list bool
}

func (m *multiValue) String() string { return strings.Join(m.vals, "\n") }
func (m *multiValue) Set(s string) error {
	if !m.list {
		m.vals = []string{s}
		return nil
	}
	m.vals = append(m.vals, s)
	return nil
}

func newInputFlags(name string, stderr io.Writer) *inputFlags {
	f := &inputFlags{
		fs:     flag.NewFlagSet("bkcache "+name, flag.ContinueOnError),
		values: map[string]*multiValue{},
		bools:  map[string]*bool{},
	}
	f.fs.SetOutput(stderr)
	for _, in := range config.Inputs {
		help := inputHelp[in]
		if boolInputs[in] {
			f.bools[in] = f.fs.Bool(in, false, help)
			continue
		}
		v := &multiValue{list: listInputs[in]}
		f.values[in] = v
		f.fs.Var(v, in, help)
	}
	f.fs.StringVar(&f.ref, "ref", "", "git `ref` this build stands for, e.g. refs/heads/feature (default: the checked-out branch)")
	f.fs.StringVar(&f.event, "event", "push", "GitHub `event` name this build stands for")
	f.fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bkcache %s [flags]\n\nFlags are named like the action's inputs.\n\n", name)
		f.fs.PrintDefaults()
	}
	return f
}

// input returns a flag's value as the raw input string.
func (f *inputFlags) input(name string) string {
	if b, ok := f.bools[name]; ok {
		if *b {
			return "true"
		}
		return ""
	}
	if v, ok := f.values[name]; ok {
		return v.String()
	}
	return ""
}
