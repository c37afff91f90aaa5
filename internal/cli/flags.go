package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bkcache/bkcache/internal/config"
	"github.com/spf13/pflag"
)

// flagKind says how a flag's values become the raw input string that
// config.Parse reads.
type flagKind int

const (
	// text is a single-line input: the last --flag wins.
	text flagKind = iota
	// list is a multi-line input: each --flag adds a line, as a line of the
	// workflow's `|` block would.
	list
	// boolean is true/false; --flag alone means true.
	boolean
)

// Which commands take a flag.
const (
	onBuild = 1 << iota
	onPlan
	actionOnly = 0
	onBoth     = onBuild | onPlan
)

// flagSpec is one CLI flag, named like the action input it stands for, so
// `--cache-scope app` means what `cache-scope: app` means in a workflow.
type flagSpec struct {
	input string
	short string
	kind  flagKind
	on    int // onBuild, onPlan, onBoth or actionOnly
	usage string
}

// inputFlags lists the action's inputs as flags: adding an input to the CLI
// is one line here. An input of config.Inputs missing from this table
// still gets a repeatable build flag (see registerInputs), so a new input is
// never unreachable from the CLI; the table only gives it a better help
// line and a kind.
//
// plan takes only the flags that shape the cache plan; the build's own
// inputs (tags, push, outputs, ...) are build flags.
var inputFlags = []flagSpec{
	{config.InputContext, "", text, onBuild, "Build context `PATH` (default \".\"; or give it as the argument)"},
	{config.InputFile, "f", text, onBuild, "Name of the Dockerfile (default \"PATH/Dockerfile\")"},
	{config.InputTarget, "", text, onBuild, "Set the target build `stage` to build"},
	{config.InputBuildArgs, "", list, onBuild, "Set build-time variables (`KEY=VALUE`; repeatable; alias --build-arg)"},
	{config.InputTags, "t", list, onBuild, "Image name and optionally a tag (\"name:tag\"; repeatable; alias --tag)"},
	{config.InputLabels, "", list, onBuild, "Set metadata for an image (`KEY=VALUE`; repeatable; alias --label)"},
	{config.InputPush, "", boolean, onBuild, "Push the image (needs --tags)"},
	{config.InputOutputs, "o", list, onBuild, "Output destination (e.g. \"type=local,dest=out\"; repeatable; alias --output)"},
	{config.InputPlatforms, "", list, onBoth, "Set target platform for build (repeatable; alias --platform)"},
	{config.InputSecrets, "", list, onBuild, "Secret to expose to the build (\"KEY=VALUE\", or \"id=NAME,src=PATH\" / \"id=NAME,env=VAR\"; repeatable; alias --secret)"},
	{config.InputSecretFiles, "", list, onBuild, "Secret file to expose to the build (`KEY=PATH`; repeatable)"},
	{config.InputSecretEnvs, "", list, onBuild, "Environment variable to expose to the build as a secret (`KEY=VAR`; repeatable)"},
	{config.InputNoCache, "", boolean, onBuild, "Do not use cache when building the image"},
	{config.InputPull, "", boolean, onBuild, "Always attempt to pull all referenced images"},
	{config.InputBuilder, "", text, onBuild, "buildx builder `name` or BuildKit address (default $BUILDKIT_HOST, $BUILDX_BUILDER, then the current buildx builder)"},
	{config.InputCacheFrom, "", list, onBoth, "Extra cache import `entry` in buildx syntax, used as is (repeatable)"},
	{config.InputCacheTo, "", list, onBoth, "Extra cache export `entry` in buildx syntax, used as is (repeatable)"},
	{config.InputCache, "", list, onBoth, "Cache store, e.g. \"type=registry,ref=HOST/REPO\" (repeatable; default: a local directory)"},
	{config.InputCacheScope, "", text, onBoth, "`name` of this build's cache (default \"buildkit\")"},
	{config.InputDryRun, "", boolean, onBuild, "Print the plan and build nothing (as \"bkcache plan\")"},
	{config.InputProgress, "", text, onBuild, "Set type of progress output (\"auto\", \"plain\", \"rawjson\", \"quiet\")"},
	{config.InputUntrusted, "", boolean, onBoth, "Let an untrusted event export to its own pull request scope"},
	{config.InputDefaultBr, "", text, onBoth, "Default `branch` to import from (default: origin's HEAD, if known)"},
	{config.InputCacheMounts, "", list, onBoth, "Dockerfile cache `mounts` to carry: auto, none, or mount ids (repeatable)"},
	{config.InputMountsMax, "", text, onBuild, "Largest cache mount `size` to save, e.g. 500MB (default 2GiB)"},
	// The GitHub REST API is only talked to inside a workflow.
	{config.InputCacheCleanup, "", boolean, actionOnly, ""},
	{config.InputGitHubToken, "", text, actionOnly, ""},
}

// dockerAliases lets docker build's singular flag names work too: `--tag`
// is `--tags`. Help shows only the input names.
var dockerAliases = map[string]string{
	"build-arg": config.InputBuildArgs,
	"tag":       config.InputTags,
	"label":     config.InputLabels,
	"output":    config.InputOutputs,
	"platform":  config.InputPlatforms,
	"secret":    config.InputSecrets,
}

func normalizeAlias(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	if in, ok := dockerAliases[name]; ok {
		return pflag.NormalizedName(in)
	}
	return pflag.NormalizedName(name)
}

// inputSet reads a command's parsed flags back as raw input values.
type inputSet struct {
	fs    *pflag.FlagSet
	kinds map[string]flagKind
}

// registerInputs adds the input flags of one command (onBuild or onPlan)
// to fs.
func registerInputs(fs *pflag.FlagSet, command int) *inputSet {
	fs.SetNormalizeFunc(normalizeAlias)
	s := &inputSet{fs: fs, kinds: map[string]flagKind{}}
	known := map[string]bool{}
	for _, f := range inputFlags {
		known[f.input] = true
		if f.on&command == 0 {
			continue
		}
		s.add(f)
	}
	for _, in := range config.Inputs {
		if !known[in] && command == onBuild {
			s.add(flagSpec{input: in, kind: list, usage: fmt.Sprintf("The action's %q input (see action.yml)", in)})
		}
	}
	return s
}

func (s *inputSet) add(f flagSpec) {
	s.kinds[f.input] = f.kind
	switch f.kind {
	case boolean:
		s.fs.BoolP(f.input, f.short, false, f.usage)
	case list:
		s.fs.StringArrayP(f.input, f.short, nil, f.usage)
	default:
		s.fs.StringP(f.input, f.short, "", f.usage)
	}
}

// input returns a flag's value as the raw input string ("" when unset or
// not a flag of this command).
func (s *inputSet) input(name string) string {
	kind, ok := s.kinds[name]
	if !ok || !s.fs.Changed(name) {
		return ""
	}
	switch kind {
	case boolean:
		v, _ := s.fs.GetBool(name)
		return strconv.FormatBool(v)
	case list:
		v, _ := s.fs.GetStringArray(name)
		return strings.Join(v, "\n")
	default:
		v, _ := s.fs.GetString(name)
		return v
	}
}

// set overrides an input with a value from elsewhere on the command line.
func (s *inputSet) set(name, value string) error { return s.fs.Set(name, value) }
