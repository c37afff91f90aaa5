// Package buildkit runs a Dockerfile build on a BuildKit daemon through
// BuildKit's Go client, with the cache imports and exports of a plan, and
// reports which build steps hit the cache.
//
// It is split the way BuildKit's own examples are: NewSolveOpt turns the
// inputs into a client.SolveOpt without touching the network, ResolveBuilder
// finds the daemon, and Build does the one I/O call (Solve, with the progress
// display and a status recorder beside it).
package buildkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/docker/cli/cli/config"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/session/secrets"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/tonistiigi/fsutil"
	// go-csvvalue is what buildx and buildctl parse --output/--secret with;
	// it is already in BuildKit's dependency graph.
	"github.com/tonistiigi/go-csvvalue"
)

// BuildOptions are the build inputs of the action (docker/build-push-action
// names and meanings).
type BuildOptions struct {
	Context   string            // local directory; "" means "."
	File      string            // Dockerfile path; "" means <Context>/Dockerfile
	Target    string            // stage to build
	BuildArgs map[string]string // build-arg:K=V
	Labels    map[string]string // label:K=V
	Platforms []string          // e.g. linux/amd64
	Tags      []string          // image names; with Push they are pushed
	Outputs   []string          // buildx --output CSV entries
	Secrets   []Secret
	Push      bool
	NoCache   bool
	Pull      bool
}

// Request is one build: what to build, the cache plan, and where.
type Request struct {
	Build BuildOptions
	// Imports and Exports are BuildKit's own cache entries (cache-from,
	// cache-to); Build redacts their secrets from everything it reports.
	Imports, Exports []client.CacheOptionsEntry
	// CacheStores serve type=local cache entries from this process over
	// the BuildKit session, keyed by the entry's src (import) or dest
	// (export); see sessionstores.go.
	CacheStores map[string]content.Store
	Builder     string // a buildx builder name or an address; "" resolves as buildx does (see ResolveBuilder)
	Progress    string // auto|plain|rawjson|quiet; "" means auto

	// mobyExports is set by Build for the docker driver: images go to
	// Docker's own image store (see mobyImageExports).
	mobyExports bool
}

// OutputTypes are the exporter types accepted in BuildOptions.Outputs.
var OutputTypes = []string{"image", "registry", "local", "tar", "oci", "docker"}

// NewSolveOpt turns a request into BuildKit solve options. It does no
// network I/O: it checks that the directories, secret files and secret
// environment variables exist, and prepares (but does not create) output
// files. Registry credentials are Build's to add (see WithGetenv).
//
// Cache exports without an ignore-error attribute get ignore-error=true:
// a cache failure must not fail the user's build unless asked for.
func NewSolveOpt(req Request) (client.SolveOpt, error) {
	b := req.Build
	var opt client.SolveOpt

	contextDir := b.Context
	if contextDir == "" {
		contextDir = "."
	}
	if isRemoteContext(contextDir) {
		return opt, fmt.Errorf("context: %q is a URL; only a local directory is supported", contextDir)
	}
	file := b.File
	if file == "" {
		file = filepath.Join(contextDir, "Dockerfile")
	}
	contextFS, err := localDir("context", contextDir)
	if err != nil {
		return opt, err
	}
	if fi, err := os.Stat(file); err != nil {
		return opt, fmt.Errorf("file: %w", err)
	} else if fi.IsDir() {
		return opt, fmt.Errorf("file: %s is a directory", file)
	}
	dockerfileFS, err := localDir("file", filepath.Dir(file))
	if err != nil {
		return opt, err
	}
	opt.LocalMounts = map[string]fsutil.FS{"context": contextFS, "dockerfile": dockerfileFS}

	opt.Frontend = "dockerfile.v0"
	opt.FrontendAttrs = frontendAttrs(b, filepath.Base(file))

	if opt.Exports, err = exports(b); err != nil {
		return opt, err
	}
	if req.mobyExports {
		mobyImageExports(opt.Exports)
	}

	for _, e := range req.Imports {
		opt.CacheImports = append(opt.CacheImports, cacheOption(e))
	}
	for _, e := range req.Exports {
		ce := cacheOption(e)
		if _, ok := ce.Attrs["ignore-error"]; !ok {
			ce.Attrs["ignore-error"] = "true"
		}
		opt.CacheExports = append(opt.CacheExports, ce)
	}

	secrets, err := secretsAttachable(b.Secrets)
	if err != nil {
		return opt, err
	}
	if secrets != nil {
		opt.Session = append(opt.Session, secrets)
	}
	return opt, nil
}

func frontendAttrs(b BuildOptions, filename string) map[string]string {
	attrs := map[string]string{"filename": filename}
	if b.Target != "" {
		attrs["target"] = b.Target
	}
	for k, v := range b.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	for k, v := range b.Labels {
		attrs["label:"+k] = v
	}
	if len(b.Platforms) > 0 {
		attrs["platform"] = strings.Join(b.Platforms, ",")
	}
	if b.NoCache {
		attrs["no-cache"] = ""
	}
	if b.Pull {
		attrs["image-resolve-mode"] = "pull"
	}
	return attrs
}

// cacheOption copies the attributes: BuildKit's client writes into them
// (a local import gets its digest filled in).
func cacheOption(e client.CacheOptionsEntry) client.CacheOptionsEntry {
	attrs := maps.Clone(e.Attrs)
	if attrs == nil {
		attrs = map[string]string{}
	}
	return client.CacheOptionsEntry{Type: e.Type, Attrs: attrs}
}

func localDir(input, dir string) (fsutil.FS, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", input, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: %s is not a directory", input, dir)
	}
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", input, err)
	}
	return fs, nil
}

func isRemoteContext(s string) bool {
	for _, p := range []string{"http://", "https://", "git://", "git@", "github.com/"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// exports builds the exporters from outputs, tags and push, the way buildx
// does: tags name every image/registry output, and when no output takes
// them an image exporter is added (pushing when push is set).
func exports(b BuildOptions) ([]client.ExportEntry, error) {
	var out []client.ExportEntry
	named := false
	for _, s := range b.Outputs {
		e, err := parseOutput(s)
		if err != nil {
			return nil, err
		}
		if e.Type == client.ExporterImage {
			if _, ok := e.Attrs["name"]; !ok && len(b.Tags) > 0 {
				e.Attrs["name"] = strings.Join(b.Tags, ",")
			}
			if b.Push {
				e.Attrs["push"] = "true"
			}
			named = true
		}
		out = append(out, e)
	}
	if !named && (len(b.Tags) > 0 || b.Push) {
		if len(b.Tags) == 0 {
			return nil, errors.New("push: needs tags (or an outputs entry with name=…)")
		}
		e := client.ExportEntry{Type: client.ExporterImage, Attrs: map[string]string{"name": strings.Join(b.Tags, ",")}}
		if b.Push {
			e.Attrs["push"] = "true"
		}
		out = append(out, e)
	}
	return out, nil
}

// parseOutput parses one buildx --output entry. type=registry becomes an
// image exporter with push=true, as in buildx. File outputs (tar, and
// oci/docker unless tar=false) get an Output func that creates dest only
// when BuildKit starts writing.
func parseOutput(s string) (client.ExportEntry, error) {
	e := client.ExportEntry{Attrs: map[string]string{}}
	fields, err := csvvalue.Fields(s, nil)
	if err != nil {
		return e, fmt.Errorf("outputs: %q: %w", s, err)
	}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return e, fmt.Errorf("outputs: %q: field %q is not key=value", s, f)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "type" {
			e.Type = v
			continue
		}
		e.Attrs[k] = v
	}
	if e.Type == "" {
		return e, fmt.Errorf("outputs: %q: missing type= (allowed: %s)", s, strings.Join(OutputTypes, ", "))
	}
	if !slices.Contains(OutputTypes, e.Type) {
		return e, fmt.Errorf("outputs: unknown type %q (allowed: %s)", e.Type, strings.Join(OutputTypes, ", "))
	}
	dest, hasDest := e.Attrs["dest"]
	delete(e.Attrs, "dest")
	switch e.Type {
	case "registry":
		e.Type = client.ExporterImage
		e.Attrs["push"] = "true"
		fallthrough
	case client.ExporterImage:
		if hasDest {
			return e, fmt.Errorf("outputs: %q: dest is not supported by type=%s", s, e.Type)
		}
	case client.ExporterLocal:
		if dest == "" {
			return e, fmt.Errorf("outputs: %q: type=local needs dest=<directory>", s)
		}
		e.OutputDir = dest
	case client.ExporterTar, client.ExporterOCI, client.ExporterDocker:
		if dest == "" || dest == "-" {
			return e, fmt.Errorf("outputs: %q: type=%s needs dest=<file>", s, e.Type)
		}
		if e.Type != client.ExporterTar && e.Attrs["tar"] == "false" {
			e.OutputDir = dest
			break
		}
		e.Output = createFile(dest)
	}
	return e, nil
}

func createFile(path string) func(map[string]string) (io.WriteCloser, error) {
	return func(map[string]string) (io.WriteCloser, error) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("outputs: %w", err)
		}
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("outputs: %w", err)
		}
		return f, nil
	}
}

// Secret is one build secret for RUN --mount=type=secret,id=ID: its
// value, a file holding it, or an environment variable holding it.
// Exactly one of Value, File and Env is set.
type Secret struct {
	ID    string
	Value []byte
	File  string
	Env   string
}

// secretsAttachable checks every secret's source now, so that a missing
// file or variable fails before the build with the secret's id, not
// halfway through as an empty secret. Values stay in memory: they are
// never written to a file. Errors name ids, files and variables, never a
// value.
func secretsAttachable(list []Secret) (session.Attachable, error) {
	if len(list) == 0 {
		return nil, nil
	}
	values := map[string][]byte{}
	var sources []secretsprovider.Source
	seen := map[string]bool{}
	for _, s := range list {
		switch {
		case s.ID == "":
			return nil, errors.New("secrets: a secret has no id")
		case seen[s.ID]:
			return nil, fmt.Errorf("secrets: duplicate id %q", s.ID)
		case countSet(len(s.Value) > 0, s.File != "", s.Env != "") != 1:
			return nil, fmt.Errorf("secrets: id %q: give exactly one source: inline, a file or an environment variable", s.ID)
		case len(s.Value) > secretsprovider.MaxSecretSize:
			return nil, fmt.Errorf("secrets: id %q: larger than BuildKit's limit of %d bytes", s.ID, secretsprovider.MaxSecretSize)
		}
		seen[s.ID] = true
		if len(s.Value) > 0 {
			values[s.ID] = s.Value
			continue
		}
		if s.Env != "" {
			if _, ok := os.LookupEnv(s.Env); !ok {
				return nil, fmt.Errorf("secrets: id %q: environment variable %s is not set", s.ID, s.Env)
			}
		}
		sources = append(sources, secretsprovider.Source{ID: s.ID, FilePath: s.File, Env: s.Env})
	}
	rest, err := secretsprovider.NewStore(sources)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return secretsprovider.NewSecretProvider(secretStore{values, rest}), nil
}

func countSet(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// secretStore serves secrets given by value from memory and the rest
// through BuildKit's file and environment store. BuildKit's FromMap alone
// cannot read files, and two providers cannot share the session.
type secretStore struct {
	values map[string][]byte
	rest   secrets.SecretStore
}

func (s secretStore) GetSecret(ctx context.Context, id string) ([]byte, error) {
	if v, ok := s.values[id]; ok {
		return v, nil
	}
	return s.rest.GetSecret(ctx, id)
}

// authAttachable hands registry credentials from the Docker config in dir
// ("" means Docker's default, ~/.docker) and its credential helpers to
// BuildKit on demand, as buildctl does.
func authAttachable(dir string) session.Attachable {
	if dir == "" {
		dir = config.Dir()
	}
	cfg, err := config.Load(dir)
	if err != nil || cfg == nil {
		// A broken config.json must not block anonymous pulls and pushes;
		// fall back to an empty one, like docker's LoadDefaultConfigFile.
		cfg, _ = config.LoadFromReader(strings.NewReader("{}"))
	}
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: authprovider.LoadAuthConfig(cfg),
	})
}
