package buildjob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bkcache/bkcache/buildkit"
	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/internal/contexthash"
	"github.com/bkcache/bkcache/internal/explain"
	"github.com/bkcache/bkcache/internal/mountstore"
	"github.com/bkcache/bkcache/internal/plan"
	"github.com/bkcache/bkcache/internal/redact"
	units "github.com/docker/go-units"
	"github.com/moby/buildkit/client"
	"golang.org/x/sync/errgroup"
)

// The build record lives in the cache's own store and scope, through
// mountstore's Store (a small blob under a key per scope). The current
// record and the one before it are kept, for `bkcache explain`.
// RecordKey is exported for internal/cli's end-to-end tests, which read
// the record a build saved.
const (
	// Neither key is a prefix of the other: the gha store finds a key by
	// prefix.
	RecordKey     = "bkcache-build-record-last"
	prevRecordKey = "bkcache-build-record-prev"
)

// recordPlan is where a build's record is read from and written to: the
// stores that carry cache mounts, with the same scopes and trust rule.
type recordPlan struct {
	imports []cacheentry.Entry // in lookup order
	export  *cacheentry.Entry  // nil: this build writes no record
	mode    string             // the export's mode
}

func (j *job) planRecord(p planned) recordPlan {
	var rp recordPlan
	carries := mountCarrier(j.cfg.Cache)
	for _, e := range plan.AddGitHubRuntime(p.cache.Imports, j.getenv) {
		if carries(e) {
			rp.imports = append(rp.imports, e)
		}
	}
	// The record goes only where the build's cache goes: an export the
	// plan kept after its trust rule, of a scope this event may write.
	if p.scopes.Export != nil {
		for _, e := range plan.AddGitHubRuntime(p.cache.Exports, j.getenv) {
			if carries(e) {
				rp.export = &e
				rp.mode = e.Attrs["mode"]
				if rp.mode == "" {
					rp.mode = "min" // BuildKit's default
				}
				break
			}
		}
	}
	return rp
}

// reportRecord says where the build record is read and saved, in the
// plan (dry runs included), so that what a build writes is on record
// before it runs.
func (j *job) reportRecord(p planned) {
	rp := j.planRecord(p)
	var from []string
	for _, e := range rp.imports {
		from = append(from, RecordWhere(e))
	}
	line := "build record: compare with "
	if len(from) == 0 {
		line += "nothing"
	} else {
		line += strings.Join(from, ", then ")
	}
	if rp.export != nil {
		line += "; save to " + RecordWhere(*rp.export)
	} else {
		line += "; no save: this build exports no cache to a store that keeps records"
	}
	j.rep.Infof("%s", line)
}

// explainRun carries what is gathered before the build to the
// comparison after it.
type explainRun struct {
	plan    recordPlan
	done    chan struct{}
	files   map[string]string
	stats   contexthash.Stats
	hashErr error
	old     *explain.Record
	oldRaw  []byte // the export scope's record as read, to keep as the previous one
	from    string // the store the old record came from
	tried   []string
}

// startExplain hashes the context files COPY/ADD read while the build
// runs. It never fails the build.
func (j *job) startExplain(ctx context.Context, p planned) *explainRun {
	x := &explainRun{plan: j.planRecord(p), done: make(chan struct{})}
	var secrets []string
	for k, v := range j.cfg.BuildArgs {
		if v != "" && explain.SecretLike(k, v) {
			secrets = append(secrets, v)
		}
	}
	j.rep.Mask(secrets...)
	// The old record is read after the build, not beside it: the build's
	// own cache requests go first to a store that may be rate-limited.
	go func() {
		defer close(x.done)
		x.files, x.stats, x.hashErr = j.hashContext(ctx)
	}()
	return x
}

func (j *job) dockerfilePath() string {
	if j.cfg.File != "" {
		return j.cfg.File
	}
	return filepath.Join(j.cfg.Context, "Dockerfile")
}

func (j *job) hashContext(ctx context.Context) (map[string]string, contexthash.Stats, error) {
	if j.cfg.Context == "" || strings.Contains(j.cfg.Context, "://") || strings.HasPrefix(j.cfg.Context, "git@") {
		return nil, contexthash.Stats{}, errors.New("the context is not a local directory")
	}
	df, err := os.ReadFile(j.dockerfilePath())
	if err != nil {
		return nil, contexthash.Stats{}, err
	}
	srcs, err := explain.ContextSources(df)
	if err != nil {
		return nil, contexthash.Stats{}, err
	}
	opt := contexthash.Options{Dockerfile: j.dockerfilePath()}
	if !j.inAction {
		// Outside a runner the same checkout is built again and again:
		// keep the hashes by size and mtime.
		abs, _ := filepath.Abs(j.cfg.Context)
		h := sha256.Sum256([]byte(abs))
		opt.Reuse = filepath.Join(defaultLocalCacheDir(j.getenv), "context-hashes", hex.EncodeToString(h[:8])+".json")
	}
	return contexthash.Files(ctx, j.cfg.Context, srcs, opt)
}

// readOld reads the first record found in the imported scopes, in order.
func (x *explainRun) readOld(ctx context.Context, getenv func(string) string) {
	for _, e := range x.plan.imports {
		where := RecordWhere(e)
		b, err := readRecord(ctx, e, RecordKey, getenv)
		if errors.Is(err, mountstore.ErrNotFound) {
			x.tried = append(x.tried, where)
			continue
		}
		if err != nil {
			// Said in the cause: a failed read is not "no record".
			msg := redact.String(firstLineOf(err.Error()), cacheentry.Secrets([]cacheentry.Entry{e}, nil)...)
			x.tried = append(x.tried, where+" (unreadable: "+msg+")")
			continue
		}
		r, err := explain.Decode(b)
		if err != nil {
			x.tried = append(x.tried, where+" (unreadable: "+firstLineOf(err.Error())+")")
			continue
		}
		x.old, x.from = &r, RecordWhere(e)
		if x.plan.export != nil && sameStore(e, *x.plan.export) {
			x.oldRaw = b
		}
		return
	}
}

func readRecord(ctx context.Context, e cacheentry.Entry, key string, getenv func(string) string) ([]byte, error) {
	s, err := recordStore(ctx, e, getenv)
	if err != nil {
		return nil, err
	}
	rc, _, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 1<<20))
}

// RecordWhere names a scope's store for messages: the type and the
// scope's location, the same for its import and export entries, without
// secrets.
func RecordWhere(e cacheentry.Entry) string {
	a := e.Attrs
	switch e.Type {
	case cacheentry.TypeLocal:
		if a["dest"] != "" {
			return "local " + a["dest"]
		}
		return "local " + a["src"]
	case cacheentry.TypeGHA:
		return "gha " + ghaScope(client.CacheOptionsEntry(e))
	case cacheentry.TypeRegistry:
		return "registry " + a["ref"]
	case cacheentry.TypeS3:
		return "s3 " + a["bucket"] + "/" + a["prefix"] + a["name"]
	case cacheentry.TypeAzblob:
		return "azblob " + a["prefix"] + a["name"]
	}
	return e.Type
}

// recordStore opens the store of an entry for records; a gha entry
// without a scope is BuildKit's default scope, as its cache is.
func recordStore(ctx context.Context, e cacheentry.Entry, getenv func(string) string) (mountstore.Store, error) {
	if e.Type == cacheentry.TypeGHA && e.Attrs["scope"] == "" {
		e = e.Clone()
		e.Attrs["scope"] = ghaScope(client.CacheOptionsEntry(e))
	}
	return mountstore.FromEntry(ctx, e, getenv)
}

func sameStore(a, b cacheentry.Entry) bool { return RecordWhere(a) == RecordWhere(b) }

// finishExplain compares the build with the imported record, reports the
// causes of its misses (log lines, output cache-miss-reason), saves the
// new record, and returns the summary lines. It never fails the build.
func (j *job) finishExplain(ctx context.Context, x *explainRun, res buildkit.Result) []string {
	if x == nil {
		return nil
	}
	start := time.Now() // the build is over: from here on, time is added
	<-x.done
	x.readOld(ctx, j.getenv)
	j.readMounts = time.Now()
	salt := ""
	if x.old != nil {
		salt = x.old.Salt
	}
	cur := explain.NewRecord(explain.Build{
		Salt:      salt,
		BuildKit:  res.BuilderVersion,
		Platforms: j.cfg.Platforms,
		Mode:      x.plan.mode,
		Args:      j.cfg.BuildArgs,
		Vertices:  buildVertices(res.Vertices),
		Files:     x.files,
		Created:   time.Now(),
	})
	var causes []explain.Cause
	if res.Cached < res.Steps {
		switch {
		case j.cfg.NoCache:
			causes = []explain.Cause{{Kind: "no-cache", Text: "no-cache is set: every step ran without the cache"}}
		case x.old == nil:
			causes = []explain.Cause{explain.NoRecord(x.tried)}
		default:
			x.old.Scope = x.from
			causes = explain.Compare(*x.old, cur)
		}
	}
	var lines []string
	for _, c := range causes {
		j.rep.Infof("why it missed: %s", c)
		lines = append(lines, c.Text)
	}
	if err := j.rep.SetOutput("cache-miss-reason", explain.Summary(causes)); err != nil {
		j.rep.Warnf("setting output %q: %v", "cache-miss-reason", err)
	}
	saved := "not saved: this build exports no cache to a store that keeps records"
	if x.plan.export != nil && x.oldRaw != nil && explain.Same(*x.old, cur) {
		// A gha store keeps every save as a new entry: an unchanged build
		// adds none.
		saved = "unchanged, kept the one in " + RecordWhere(*x.plan.export)
	} else if x.plan.export != nil {
		cur.Scope = RecordWhere(*x.plan.export)
		n, err := saveRecord(ctx, *x.plan.export, cur, x.oldRaw, j.getenv)
		if err != nil {
			j.rep.Warnf("build record not saved: %v", err)
			saved = "not saved (store failed)"
		} else {
			saved = fmt.Sprintf("saved to %s (%s)", cur.Scope, units.BytesSize(float64(n)))
		}
	}
	hashed := fmt.Sprintf("%d context files hashed (%d reused)", x.stats.Hashed, x.stats.Reused)
	if x.hashErr != nil {
		hashed = "context files not hashed: " + x.hashErr.Error()
	}
	j.rep.Infof("build record %s; %s; %s after the build", saved, hashed, time.Since(start).Round(time.Millisecond))
	return lines
}

func buildVertices(vs []buildkit.Vertex) []explain.BuildVertex {
	out := make([]explain.BuildVertex, len(vs))
	for i, v := range vs {
		out[i] = explain.BuildVertex{Digest: v.Digest, Name: v.Name, Inputs: v.Inputs, Cached: v.Cached}
	}
	return out
}

// saveRecord writes r as the scope's record, and the record it replaces
// (prev, as read before the build) as the previous one.
func saveRecord(ctx context.Context, e cacheentry.Entry, r explain.Record, prev []byte, getenv func(string) string) (int, error) {
	b, err := explain.Encode(r)
	if err != nil {
		return 0, err
	}
	s, err := recordStore(ctx, e, getenv)
	if err != nil {
		return 0, err
	}
	// Two small writes under different keys: side by side.
	var eg errgroup.Group
	if prev != nil {
		eg.Go(func() error { return s.Put(ctx, prevRecordKey, bytes.NewReader(prev), int64(len(prev))) })
	}
	eg.Go(func() error { return s.Put(ctx, RecordKey, bytes.NewReader(b), int64(len(b))) })
	if err := eg.Wait(); err != nil {
		return 0, fmt.Errorf("%s: %w", s, err)
	}
	return len(b), nil
}

// explainLast is `bkcache explain`: it compares the last two records of
// the scope this ref exports to (else the first it imports that has one)
// and prints the causes of the last build's first misses.
func (j *job) explainLast(ctx context.Context, p planned, out io.Writer) error {
	rp := j.planRecord(p)
	stores := rp.imports
	if rp.export != nil {
		stores = append([]cacheentry.Entry{*rp.export}, stores...)
	}
	if len(stores) == 0 {
		return errors.New("no cache store here keeps build records (local, gha, s3, azblob or registry)")
	}
	var tried []string
	for _, e := range stores {
		where := RecordWhere(e)
		tried = append(tried, where)
		b, err := readRecord(ctx, e, RecordKey, j.getenv)
		if errors.Is(err, mountstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading the build record of %s: %w", where, err)
		}
		last, err := explain.Decode(b)
		if err != nil {
			return fmt.Errorf("the build record of %s: %w", where, err)
		}
		fmt.Fprintf(out, "last build of %s: %s, %s\n", where, last.Created.Format(time.RFC3339), stepCount(last))
		b, err = readRecord(ctx, e, prevRecordKey, j.getenv)
		if errors.Is(err, mountstore.ErrNotFound) {
			fmt.Fprintln(out, "no earlier build record to compare with (a build that changed nothing saves none)")
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the earlier build record of %s: %w", where, err)
		}
		prev, err := explain.Decode(b)
		if err != nil {
			return fmt.Errorf("the earlier build record of %s: %w", where, err)
		}
		prev.Scope = where
		fmt.Fprintf(out, "compared with the build of %s\n", prev.Created.Format(time.RFC3339))
		causes := explain.Compare(prev, last)
		if len(causes) == 0 {
			fmt.Fprintln(out, "no step missed the cache")
		}
		for _, c := range causes {
			fmt.Fprintf(out, "why it missed: %s\n", c)
		}
		return nil
	}
	fmt.Fprintln(out, explain.NoRecord(tried))
	return nil
}

// stepCount says how many of a record's steps were cached.
func stepCount(r explain.Record) string {
	steps, cached := 0, 0
	for _, v := range r.Vertices {
		if explain.IsStep(v.Name) {
			steps++
			if v.Cached {
				cached++
			}
		}
	}
	return fmt.Sprintf("%d of %d steps cached", cached, steps)
}

func firstLineOf(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
