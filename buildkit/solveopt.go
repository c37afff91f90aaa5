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
	Secrets   []string          // id=…,src=… or id=…,env=…
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
	Builder     string // see ResolveBuilder; "" means BUILDKIT_HOST or the current buildx builder
	Progress    string // auto|plain|rawjson|quiet; "" means auto
	// DockerConfigDir holds config.json with registry credentials; "" means
	// Docker's default ($DOCKER_CONFIG, else ~/.docker).
	DockerConfigDir string
}

// OutputTypes are the exporter types accepted in BuildOptions.Outputs.
var OutputTypes = []string{"image", "registry", "local", "tar", "oci", "docker"}

// NewSolveOpt turns a request into BuildKit solve options. It does no
// network I/O: it checks that the directories, secret files and secret
// environment variables exist, loads the Docker config file, and prepares
// (but does not create) output files.
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
	opt.Session = append(opt.Session, authAttachable(req.DockerConfigDir))
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

// secretsAttachable parses the secrets input and checks every source now,
// so that a missing file or variable fails before the build with the
// input's name, not halfway through as an empty secret.
func secretsAttachable(specs []string) (session.Attachable, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	var srcs []secretsprovider.Source
	seen := map[string]bool{}
	for _, s := range specs {
		src, err := parseSecret(s)
		if err != nil {
			return nil, err
		}
		if seen[src.ID] {
			return nil, fmt.Errorf("secrets: duplicate id %q", src.ID)
		}
		seen[src.ID] = true
		if src.Env != "" {
			if _, ok := os.LookupEnv(src.Env); !ok {
				return nil, fmt.Errorf("secrets: id %q: environment variable %s is not set", src.ID, src.Env)
			}
		}
		srcs = append(srcs, src)
	}
	store, err := secretsprovider.NewStore(srcs)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return secretsprovider.NewSecretProvider(store), nil
}

// parseSecret parses id=…,src=… (also source=, or type=file) and
// id=…,env=… (also type=env,src=VAR), buildx's syntax. Error messages quote
// the input, which holds only names and paths, never the secret itself.
func parseSecret(s string) (secretsprovider.Source, error) {
	var src secretsprovider.Source
	fields, err := csvvalue.Fields(s, nil)
	if err != nil {
		return src, fmt.Errorf("secrets: %q: %w", s, err)
	}
	typ := ""
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return src, fmt.Errorf("secrets: %q: field %q is not key=value", s, f)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "type":
			if v != "file" && v != "env" {
				return src, fmt.Errorf("secrets: %q: unknown type %q (allowed: file, env)", s, v)
			}
			typ = v
		case "id":
			src.ID = v
		case "src", "source":
			src.FilePath = v
		case "env":
			src.Env = v
		default:
			return src, fmt.Errorf("secrets: %q: unknown key %q (allowed: id, src, source, env, type)", s, k)
		}
	}
	if typ == "env" && src.Env == "" {
		src.Env, src.FilePath = src.FilePath, ""
	}
	switch {
	case src.ID == "":
		return src, fmt.Errorf("secrets: %q: missing id", s)
	case src.FilePath == "" && src.Env == "":
		return src, fmt.Errorf("secrets: %q: missing src or env", s)
	case src.FilePath != "" && src.Env != "":
		return src, fmt.Errorf("secrets: %q: src and env are exclusive", s)
	}
	return src, nil
}

// authAttachable hands registry credentials from the Docker config (and its
// credential helpers) to BuildKit on demand, as buildctl does.
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
