// Package explain keeps a small record of each build and compares the
// record of the imported scope with the build that just ran, to name why
// the first step missed the cache: a context file, a build-arg, a moved
// base image, an edited instruction, the platform, the BuildKit version, or
// a cache that was not there.
//
// It is pure: the caller hands in the status stream's vertices, the
// inputs it sent and the context hashes (internal/contexthash); nothing
// here reads files or talks to a store.
//
// Why not BuildKit's own answer: BuildKit keeps cache keys in the daemon
// (solver/ and the ops' CacheMap) and build history records the solve
// (`buildctl debug histories`), but neither survives a fresh CI builder,
// and neither says which input of a step changed between two builds on
// two machines. The status stream gives what the record needs: each
// vertex's digest (the LLB definition, so an edited instruction, a
// build-arg in a RUN's environment, a moved base image or another platform
// changes it), its inputs (the graph edges) and whether it was Cached. A
// COPY's digest does not cover the files it copies (BuildKit adds their
// content to the cache key at solve time, in CacheMap), so the record
// keeps content hashes of the context files COPY/ADD read.
package explain

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// FormatVersion is the record format; records of another format are not
// compared.
const FormatVersion = 1

// MaxSize is the most a record may take once encoded: Encode collapses
// the context file hashes into directories until it fits.
const MaxSize = 64 << 10

// Record is what one build leaves for the next one to compare with.
type Record struct {
	Format    int       `json:"format"`
	Created   time.Time `json:"created"`
	Scope     string    `json:"scope,omitempty"` // where it was saved, for messages
	BuildKit  string    `json:"buildkit,omitempty"`
	Platforms []string  `json:"platforms,omitempty"`
	// Mode is the export's mode (min or max): with min, only the final
	// stage's cache is kept.
	Mode string `json:"mode,omitempty"`
	// Salt goes into every build-arg hash. A build takes the salt of the
	// record it compares with, so the hashes compare; a new one otherwise.
	// It makes tables of precomputed hashes useless, not a weak secret
	// safe: pass those as build secrets, not build-args.
	Salt     string         `json:"salt,omitempty"`
	Args     map[string]Arg `json:"args,omitempty"`
	Vertices []Vertex       `json:"vertices"`
	// Files are the context files COPY/ADD read: path → short content
	// hash. With FilesDepth > 0, paths deeper than that many elements are
	// folded into their directory ("dir/") to keep the record small.
	Files      map[string]string `json:"files,omitempty"`
	FilesDepth int               `json:"files_depth,omitempty"`
	// Hashed says the context files were hashed (Files may still be
	// empty: a Dockerfile without COPY or ADD).
	Hashed bool `json:"hashed,omitempty"`
}

// Arg is a build-arg as the record keeps it. Secret-like values are kept
// only as Hash, which is enough to say "changed".
type Arg struct {
	Value  string `json:"v,omitempty"`
	Hash   string `json:"h"`
	Secret bool   `json:"s,omitempty"`
}

// Vertex is one node of the build graph.
type Vertex struct {
	Digest string `json:"d"`
	Name   string `json:"n"`
	// Inputs are indexes into Record.Vertices, which keep build order.
	Inputs []int `json:"i,omitempty"`
	Cached bool  `json:"c,omitempty"`
}

// BuildVertex is a vertex as the caller has it from the status stream.
type BuildVertex struct {
	Digest string
	Name   string
	Inputs []string
	Cached bool
}

// Build is what the caller knows of one build.
type Build struct {
	Scope     string
	BuildKit  string
	Platforms []string
	Mode      string
	Args      map[string]string
	Vertices  []BuildVertex
	Files     map[string]string // nil: not hashed
	Created   time.Time
	Salt      string // the compared record's salt; "" for a new one
}

// bookkeeping vertices are not part of the build graph's cache: their
// names are BuildKit's, not the Dockerfile's.
func bookkeeping(name string) bool {
	for _, p := range []string{"importing cache manifest from ", "exporting ", "[auth] ", "resolve image config for ", "preparing layers for inline cache", "writing image ", "naming to ", "pushing "} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// NewRecord makes the record of a build. Secret-like build-arg values are
// kept as hashes only and are masked in vertex names (the Dockerfile
// frontend expands build-args into RUN names).
func NewRecord(b Build) Record {
	r := Record{
		Format:    FormatVersion,
		Created:   b.Created.UTC(),
		Scope:     b.Scope,
		BuildKit:  b.BuildKit,
		Platforms: slices.Sorted(slices.Values(b.Platforms)),
		Mode:      b.Mode,
		Files:     b.Files,
		Hashed:    b.Files != nil,
		Salt:      b.Salt,
	}
	if r.Salt == "" {
		r.Salt = newSalt()
	}
	var secrets []string
	if len(b.Args) > 0 {
		r.Args = map[string]Arg{}
		for k, v := range b.Args {
			a := Arg{Hash: hashArg(r.Salt, k, v)}
			if SecretLike(k, v) {
				a.Secret = true
				if v != "" {
					secrets = append(secrets, v)
				}
			} else {
				a.Value = v
			}
			r.Args[k] = a
		}
	}
	for _, v := range buildOrder(b.Vertices) {
		r.Vertices = append(r.Vertices, Vertex{Digest: v.Digest, Name: Mask(v.Name, secrets), Cached: v.Cached})
	}
	index := map[string]int{}
	for i, v := range r.Vertices {
		index[v.Digest] = i
	}
	for i, v := range buildOrder(b.Vertices) {
		for _, in := range v.Inputs {
			if j, ok := index[in]; ok {
				r.Vertices[i].Inputs = append(r.Vertices[i].Inputs, j)
			}
		}
	}
	return r
}

// buildOrder returns the graph's vertices without bookkeeping and
// duplicates, each after its inputs, otherwise in the order the status
// stream reported them.
func buildOrder(vs []BuildVertex) []BuildVertex {
	byDigest := map[string]BuildVertex{}
	for _, v := range vs {
		if !bookkeeping(v.Name) {
			if _, dup := byDigest[v.Digest]; !dup {
				byDigest[v.Digest] = v
			}
		}
	}
	var out []BuildVertex
	done := map[string]bool{}
	var visit func(d string)
	visit = func(d string) {
		v, ok := byDigest[d]
		if !ok || done[d] {
			return
		}
		done[d] = true
		for _, in := range v.Inputs {
			visit(in)
		}
		out = append(out, v)
	}
	for _, v := range vs {
		visit(v.Digest)
	}
	return out
}

// Encode writes the record as gzip'd JSON, at most MaxSize bytes: when the
// file hashes make it bigger, they are folded into directories.
func Encode(r Record) ([]byte, error) {
	depth := r.FilesDepth
	full := r.Files
	for {
		b, err := encode(r)
		if err != nil {
			return nil, err
		}
		if len(b) <= MaxSize {
			return b, nil
		}
		if len(r.Files) <= 1 {
			return nil, fmt.Errorf("build record is %d bytes even without file hashes (limit %d)", len(b), MaxSize)
		}
		if depth == 0 {
			depth = maxDepth(full)
		}
		depth--
		if depth == 0 {
			r.Files, r.FilesDepth = FoldFiles(full, 0), -1 // one hash for all
			continue
		}
		r.Files, r.FilesDepth = FoldFiles(full, depth), depth
	}
}

func encode(r Record) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(r); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ErrFormat says a stored record is of another format or damaged.
var ErrFormat = errors.New("not a build record of this format")

// Decode reads a record written by Encode.
func Decode(b []byte) (Record, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	var r Record
	if err := json.NewDecoder(io.LimitReader(zr, 16<<20)).Decode(&r); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if r.Format != FormatVersion {
		return Record{}, fmt.Errorf("%w: format %d", ErrFormat, r.Format)
	}
	// Compare relies on build order: each input comes before its user.
	for i, v := range r.Vertices {
		for _, in := range v.Inputs {
			if in < 0 || in >= i {
				return Record{}, fmt.Errorf("%w: vertex %d has input %d", ErrFormat, i, in)
			}
		}
	}
	for _, a := range r.Args {
		if len(a.Hash) < 6 {
			return Record{}, fmt.Errorf("%w: a build-arg without its hash", ErrFormat)
		}
	}
	return r, nil
}

func maxDepth(files map[string]string) int {
	d := 0
	for p := range files {
		d = max(d, strings.Count(p, "/")+1)
	}
	return d
}

func newSalt() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
