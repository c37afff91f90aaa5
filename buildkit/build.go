package buildkit

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/redact"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/grpcerrors"
	"github.com/moby/buildkit/util/progress/progressui"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
)

// Result is what a build produced and how much of it came from the cache.
type Result struct {
	Digest   string            // containerimage.digest: the image manifest (list) digest
	ImageID  string            // containerimage.config.digest
	Metadata map[string]string // the solve's exporter response, as buildx's metadata file
	// Steps counts the Dockerfile instructions the build ran or found
	// cached; Cached counts those BuildKit reported Cached. Both come from
	// the status stream (see Vertex.Step).
	Steps, Cached int
	Vertices      []Vertex
	// Warnings are things the user should see but that did not fail the
	// build: failed cache imports/exports, and BuildKit's own build
	// warnings. Secrets are already redacted.
	Warnings []string
	// Misses are the cache imports that found nothing at their location
	// (a scope not exported yet): expected, so not warnings. Only registry
	// imports can be told apart this way; BuildKit reports an empty s3,
	// azblob, gha or local location as no error at all.
	Misses  []string
	Builder Endpoint
	// Imports and Exports are the cache entries the build ran with, as
	// the request gave them: those it left out (an importer or exporter
	// Docker's own BuildKit lacks, a local directory it could not make,
	// an exporter BuildKit could not configure) are missing, each with a
	// warning. A local import found empty counts as tried (Misses). Both
	// are empty when no solve ran.
	Imports, Exports []client.CacheOptionsEntry
	// BuilderVersion is the builder's BuildKit version (its Info call),
	// "" when it does not say.
	BuilderVersion string
}

// ProgressModes are the accepted Request.Progress values: BuildKit's
// display modes, except tty (the action's log is never a terminal).
var ProgressModes = []string{
	string(progressui.AutoMode), string(progressui.PlainMode),
	string(progressui.RawJSONMode), string(progressui.QuietMode),
}

// Grouper folds log output into collapsible groups (GitHub Actions'
// ::group::). Build opens one group per build step in plain progress.
type Grouper interface {
	Group(title string)
	EndGroup()
}

// Option configures Build.
type Option func(*buildConfig)

type buildConfig struct {
	out     io.Writer
	getenv  func(string) string
	grouper Grouper
	running func(step string)
}

// WithProgressOutput sets where the progress display writes (default stderr).
func WithProgressOutput(w io.Writer) Option { return func(c *buildConfig) { c.out = w } }

// WithGetenv sets the environment that builder resolution and registry
// credentials ($DOCKER_CONFIG) are read from (default os.Getenv).
func WithGetenv(f func(string) string) Option { return func(c *buildConfig) { c.getenv = f } }

// WithGrouper folds plain progress output into one group per step.
func WithGrouper(g Grouper) Option { return func(c *buildConfig) { c.grouper = g } }

// WithRunningSteps calls f with the name of each build step (Vertex.Step)
// that BuildKit starts to run rather than load from the cache, once per
// step and solve, as soon as the status stream says so. f is called from
// the goroutine that reads the stream: it must not block. Cancelling the
// build's context from f stops the build.
func WithRunningSteps(f func(step string)) Option { return func(c *buildConfig) { c.running = f } }

// Build resolves the builder, runs the build and counts its cache hits.
//
// Cache failures do not fail the build unless the entry says
// ignore-error=false: BuildKit itself skips failing exports with
// ignore-error=true (which NewSolveOpt sets by default) and continues past
// failing imports; Build turns both into warnings naming the backend. An
// export that BuildKit refuses to even configure fails the whole solve
// before anything runs; Build then retries once without it.
func Build(ctx context.Context, req Request, opts ...Option) (Result, error) {
	cfg := buildConfig{out: os.Stderr, getenv: os.Getenv}
	for _, o := range opts {
		o(&cfg)
	}
	mode, err := progressMode(req.Progress)
	if err != nil {
		return Result{}, err
	}
	secrets := cacheentry.Secrets(req.Imports, req.Exports)
	// Bad inputs fail here, before any connection; solve builds it again
	// for each attempt.
	if _, err := NewSolveOpt(req); err != nil {
		return Result{}, redact.Error(err, secrets...)
	}

	ep, err := ResolveBuilder(req.Builder, cfg.getenv)
	if err != nil {
		return Result{}, err
	}
	var warnings, localMisses []string
	givenImports := req.Imports
	req.Imports, localMisses = splitLocalMisses(req.Imports)
	created := missingLocalDirs(req.Exports)
	req.Exports, warnings, err = checkLocalExports(req.Exports)
	if err != nil {
		return Result{}, redact.Error(err, secrets...)
	}

	c, err := connect(ctx, ep)
	if err != nil {
		removeCreatedDirs(created)
		return Result{Builder: ep}, err
	}
	defer c.release()
	if ep.Docker {
		req.mobyExports = true
		if !dockerContainerdStore(c.workers) {
			if err := dockerPlatforms(ep, req.Build.Platforms); err != nil {
				removeCreatedDirs(created)
				return Result{Builder: ep}, err
			}
			tried := req.Imports
			if w := dropForDocker(&req, ep); w != "" {
				warnings = append(warnings, w)
				givenImports = slices.DeleteFunc(slices.Clone(givenImports), func(e client.CacheOptionsEntry) bool {
					return slices.ContainsFunc(tried, sameEntry(e)) && !slices.ContainsFunc(req.Imports, sameEntry(e))
				})
			}
		}
	}

	version := ""
	if info, err := c.Info(ctx); err == nil && info != nil {
		version = info.BuildkitVersion.Version
	}
	res, rec, err := solve(ctx, c.Client, req, mode, cfg)
	if err != nil && ctx.Err() == nil {
		if dropped, rest, ok := droppableExport(err, req.Exports); ok {
			w := fmt.Sprintf("cache export %s could not be configured, building without it: %s", redactedList(dropped), firstLine(err.Error()))
			if len(dropped) > 1 {
				w = fmt.Sprintf("one of the cache exports %s could not be configured and BuildKit does not say which, building without all of them: %s", redactedList(dropped), firstLine(err.Error()))
			}
			warnings = append(warnings, w)
			req.Exports = rest
			res, rec, err = solve(ctx, c.Client, req, mode, cfg)
		} else if slow, rest := slowExports(req.Exports); isJobLost(err) && len(slow) > 0 {
			// buildkitd sets up exporters before it registers the job and
			// its Status call waits only 6 s (solver/jobs.go); an azblob or
			// gha store that does not answer loses the job, and with it the
			// real error. Name the stores, and drop them if allowed.
			names := redactedList(slow)
			if !allIgnoreErrors(slow) {
				err = fmt.Errorf("cache export %s could not be configured in time (ignore-error=false): %w", names, err)
			} else {
				warnings = append(warnings, fmt.Sprintf("cache export %s could not be configured in time, building without it", names))
				req.Exports = rest
				res, rec, err = solve(ctx, c.Client, req, mode, cfg)
			}
		}
	}
	out := Result{Builder: ep, Misses: localMisses, Imports: givenImports, Exports: req.Exports, BuilderVersion: version}
	if rec != nil {
		out.Vertices, out.Steps, out.Cached = rec.snapshot()
		cw, misses := cacheWarnings(out.Vertices, req, err == nil)
		warnings = append(warnings, cw...)
		for _, m := range misses {
			out.Misses = append(out.Misses, redact.String(m, secrets...))
		}
		warnings = append(warnings, rec.buildWarnings()...)
	}
	for _, w := range warnings {
		out.Warnings = append(out.Warnings, redact.String(w, secrets...))
	}
	if err != nil {
		removeCreatedDirs(created)
		if exp := failedExport(out.Vertices, req.Exports); exp != "" {
			err = fmt.Errorf("cache export %s failed (ignore-error=false): %w", exp, err)
		} else if m := configureExporterErr.FindStringSubmatch(err.Error()); m != nil {
			err = fmt.Errorf("cache export %s could not be configured (ignore-error=false): %w", describeExport(m[1], req.Exports), err)
		}
		return out, redact.Error(fmt.Errorf("build on %s: %w", ep.Addr, err), secrets...)
	}
	if ep.Docker && !dockerContainerdStore(c.workers) {
		// Docker's moby exporter stored the image but cannot push it.
		if err := pushWithDocker(ctx, c.docker, req.Build, cfg.getenv("DOCKER_CONFIG")); err != nil {
			return out, fmt.Errorf("build on %s: %w", ep.Addr, err)
		}
	}
	out.Metadata = maps.Clone(res.ExporterResponse)
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	out.Digest = out.Metadata["containerimage.digest"]
	out.ImageID = out.Metadata["containerimage.config.digest"]
	return out, nil
}

// solve runs one Solve with the progress display and the recorder side by
// side, as BuildKit's build-using-dockerfile example does.
func solve(ctx context.Context, c *client.Client, req Request, mode progressui.DisplayMode, cfg buildConfig) (*client.SolveResponse, *recorder, error) {
	solveOpt, err := NewSolveOpt(req)
	if err != nil {
		return nil, nil, err
	}
	solveOpt.Session = append(solveOpt.Session, authAttachable(cfg.getenv("DOCKER_CONFIG")))
	out := cfg.out
	var gw *groupWriter
	if cfg.grouper != nil && mode == progressui.PlainMode {
		gw = &groupWriter{w: out, g: cfg.grouper}
		out = gw
	}
	display, err := progressui.NewDisplay(out, mode)
	if err != nil {
		return nil, nil, fmt.Errorf("progress: %w", err)
	}
	var ociDirs []string
	if len(req.CacheStores) > 0 {
		stop, dirs, err := preinitSession(ctx, c, &solveOpt, req.CacheStores)
		if err != nil {
			return nil, nil, err
		}
		defer stop()
		ociDirs = dirs
	}
	rec := newRecorder()
	statusCh := make(chan *client.SolveStatus)
	displayCh := make(chan *client.SolveStatus)
	var res *client.SolveResponse
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		var err error
		res, err = c.Solve(ctx, nil, solveOpt, statusCh)
		return err
	})
	eg.Go(func() error {
		defer close(displayCh)
		for s := range statusCh {
			for _, step := range rec.update(s) {
				if cfg.running != nil {
					cfg.running(step)
				}
			}
			displayCh <- s
		}
		return nil
	})
	eg.Go(func() error {
		// Not the group's context: the display must drain the stream and
		// print the failing step's logs even when the solve fails.
		_, err := display.UpdateFrom(context.WithoutCancel(ctx), displayCh)
		for range displayCh {
			// a display that gave up must not block the recorder
		}
		return err
	})
	err = eg.Wait()
	if gw != nil {
		gw.Close()
	}
	if err == nil {
		err = writeOCIIndexes(res, ociDirs)
	}
	return res, rec, err
}

func progressMode(s string) (progressui.DisplayMode, error) {
	if s == "" {
		return progressui.AutoMode, nil
	}
	if slices.Contains(ProgressModes, s) {
		return progressui.DisplayMode(s), nil
	}
	return "", fmt.Errorf("progress: unknown mode %q (allowed: %s)", s, strings.Join(ProgressModes, ", "))
}

// ignoresErrors reports whether a failure of export e may be skipped.
func ignoresErrors(e client.CacheOptionsEntry) bool { return e.Attrs["ignore-error"] != "false" }

// checkLocalExports creates the directories of local cache exports.
// BuildKit's client does this itself but fails the whole solve when it
// cannot, whatever ignore-error says.
func checkLocalExports(exports []client.CacheOptionsEntry) ([]client.CacheOptionsEntry, []string, error) {
	var keep []client.CacheOptionsEntry
	var warnings []string
	for _, e := range exports {
		if e.Type == "local" && e.Attrs["dest"] != "" {
			if err := os.MkdirAll(e.Attrs["dest"], 0o755); err != nil {
				if !ignoresErrors(e) {
					return nil, nil, fmt.Errorf("cache export %s: %w", redacted(e), err)
				}
				warnings = append(warnings, fmt.Sprintf("cache export %s skipped: %v", redacted(e), err))
				continue
			}
		}
		keep = append(keep, e)
	}
	return keep, warnings, nil
}

// sameEntry matches the entry e names, attribute for attribute.
func sameEntry(e client.CacheOptionsEntry) func(client.CacheOptionsEntry) bool {
	return func(o client.CacheOptionsEntry) bool { return e.Type == o.Type && maps.Equal(e.Attrs, o.Attrs) }
}

// configureExporterErr is how buildkitd wraps an exporter that could not be
// set up (control/control.go); the cause keeps no gRPC code of its own, so
// the wrapping text is all there is.
var configureExporterErr = regexp.MustCompile(`failed to configure ([a-z0-9]+) cache exporter: `)

// droppableExport finds the exports whose configuration failed the solve,
// if their errors may be ignored, and returns the exports without them.
//
// BuildKit names only the failing exporter's type. With several exports of
// that type (a user's type=local beside the gha data plane's), the failing
// one is the one whose own attribute value the error quotes ("unsupported
// compression type zztop"); when none or several do, it cannot be told, so
// all exports of the type are dropped (each is named in the warning), never
// one picked by its position.
func droppableExport(err error, exports []client.CacheOptionsEntry) (dropped, rest []client.CacheOptionsEntry, ok bool) {
	m := configureExporterErr.FindStringSubmatch(err.Error())
	if m == nil {
		return nil, nil, false
	}
	cause := err.Error()[strings.Index(err.Error(), m[0])+len(m[0]):]
	var cands []int
	for i, e := range exports {
		if e.Type == m[1] {
			cands = append(cands, i)
		}
	}
	if len(cands) > 1 {
		var named []int
		for _, i := range cands {
			if quotesOwnValue(cause, exports, i, cands) {
				named = append(named, i)
			}
		}
		if len(named) == 1 {
			cands = named
		}
	}
	if len(cands) == 0 {
		return nil, nil, false
	}
	drop := map[int]bool{}
	for _, i := range cands {
		if !ignoresErrors(exports[i]) {
			return nil, nil, false
		}
		drop[i] = true
	}
	for i, e := range exports {
		if drop[i] {
			dropped = append(dropped, e)
		} else {
			rest = append(rest, e)
		}
	}
	return dropped, rest, true
}

// quotesOwnValue reports whether msg quotes an attribute value of
// exports[i] that no other candidate has: a path, ref, bucket or a bad
// value (booleans and short words tell nothing).
func quotesOwnValue(msg string, exports []client.CacheOptionsEntry, i int, cands []int) bool {
	for k, v := range exports[i].Attrs {
		if len(v) < 4 || v == "true" || v == "false" || !strings.Contains(msg, v) {
			continue
		}
		shared := false
		for _, j := range cands {
			if j != i && exports[j].Attrs[k] == v {
				shared = true
			}
		}
		if !shared {
			return true
		}
	}
	return false
}

// exportVertexTypes maps BuildKit's cache exporter vertex names to types.
var exportVertexTypes = map[string]string{
	"exporting cache to registry":           "registry",
	"exporting cache to client directory":   "local",
	"exporting cache to Amazon S3":          "s3",
	"exporting cache to Azure Blob Storage": "azblob",
	"exporting to GitHub Actions Cache":     "gha",
}

const importVertexPrefix = "importing cache manifest from "

// describeExport names the export(s) of a type for messages.
func describeExport(typ string, exports []client.CacheOptionsEntry) string {
	var names []string
	for _, e := range exports {
		if e.Type == typ {
			names = append(names, redacted(e))
		}
	}
	if len(names) == 0 {
		return "type=" + typ
	}
	return strings.Join(names, " or ")
}

// describeImport names the import behind an "importing cache manifest
// from <id>" vertex: BuildKit uses the ref for registry imports and
// "<type>:<hash>" for the others.
func describeImport(id string, imports []client.CacheOptionsEntry) string {
	for _, e := range imports {
		if e.Type == "registry" && e.Attrs["ref"] == id {
			return redacted(e)
		}
	}
	typ, _, _ := strings.Cut(id, ":")
	for _, e := range imports {
		if e.Type == typ {
			return describeExport(typ, imports)
		}
	}
	return id
}

// cacheWarnings turns failed cache vertices into warnings. After a failed
// build an export error is the cause, not a warning.
func cacheWarnings(vs []Vertex, req Request, built bool) (warnings, misses []string) {
	for _, v := range vs {
		if v.Error == "" {
			continue
		}
		if id, ok := strings.CutPrefix(v.Name, importVertexPrefix); ok {
			if isImportMiss(v.Error) {
				// A scope nobody exported yet: normal on the first build of
				// a branch, so it is information, not a warning.
				misses = append(misses, describeImport(id, req.Imports))
				continue
			}
			warnings = append(warnings, fmt.Sprintf("cache import %s failed, building without it: %s", describeImport(id, req.Imports), firstLine(v.Error)))
		}
		if typ, ok := exportVertexTypes[v.Name]; ok && built {
			warnings = append(warnings, fmt.Sprintf("cache export %s failed, the build is kept: %s", describeExport(typ, req.Exports), firstLine(v.Error)))
		}
	}
	return warnings, misses
}

// registryImportMissing matches the one import failure that means "nothing
// there yet", as the real buildkitd words it: the registry answered 404 for
// the cache tag ("failed to configure registry cache importer: <ref>: not
// found", containerd's resolver wrapping errdefs.ErrNotFound). It matches
// the whole message, so that a refusal is never taken for a miss: Docker
// Hub's "pull access denied, repository does not exist or may require
// authorization: …", a 401, or a manifest whose blobs are gone ("content at
// <url> not found: not found"). BuildKit reports missing s3, azblob and gha
// names and an empty local directory as no error at all, so they need no
// match. The status stream carries vertex errors as text only.
// Docker 20.10's embedded BuildKit (the docker driver) says the same
// without the prefix.
var registryImportMissing = regexp.MustCompile(`^(failed to configure registry cache importer: )?[^\s:]+(:[^\s:]+)*: not found$`)

// isImportMiss reports whether a cache import vertex failed only because
// there is nothing at its location yet.
func isImportMiss(vertexError string) bool {
	return registryImportMissing.MatchString(strings.TrimSpace(vertexError))
}

// failedExport names the cache export whose vertex failed, if any.
func failedExport(vs []Vertex, exports []client.CacheOptionsEntry) string {
	for _, v := range vs {
		if typ, ok := exportVertexTypes[v.Name]; ok && v.Error != "" {
			return describeExport(typ, exports)
		}
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// isJobLost reports the error buildkitd gives when a solve's job was not
// registered in time: its exporters were still being configured. The
// Status call fails with solver/errdefs.UnknownJobError, which reaches the
// client only as a gRPC status (NotFound, "no such job <id>"); NotFound
// alone would also take in a missing base image.
func isJobLost(err error) bool {
	st, ok := grpcerrors.AsGRPCStatus(err)
	return ok && st != nil && st.Code() == codes.NotFound && strings.HasPrefix(st.Message(), "no such job ")
}

// slowExports splits off the exports whose setup does network I/O in
// buildkitd (azblob, gha), the ones that can outlast its job registration.
func slowExports(exports []client.CacheOptionsEntry) (slow, rest []client.CacheOptionsEntry) {
	for _, e := range exports {
		if e.Type == cacheentry.TypeAzblob || e.Type == cacheentry.TypeGHA {
			slow = append(slow, e)
			continue
		}
		rest = append(rest, e)
	}
	return slow, rest
}

func allIgnoreErrors(es []client.CacheOptionsEntry) bool {
	for _, e := range es {
		if !ignoresErrors(e) {
			return false
		}
	}
	return true
}

func redactedList(es []client.CacheOptionsEntry) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = redacted(e)
	}
	return strings.Join(parts, ", ")
}

// redacted names an entry for messages, without its secrets.
func redacted(e client.CacheOptionsEntry) string { return cacheentry.Entry(e).Redacted() }
