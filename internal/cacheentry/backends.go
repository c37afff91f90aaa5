package cacheentry

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
)

// Backend types BuildKit v0.34.2 registers (cmd/buildkitd/main.go).
const (
	TypeInline   = "inline"
	TypeRegistry = "registry"
	TypeLocal    = "local"
	TypeGHA      = "gha"
	TypeS3       = "s3"
	TypeAzblob   = "azblob"
)

// Types lists every backend, in the order the docs present them.
func Types() []string {
	return []string{TypeInline, TypeRegistry, TypeLocal, TypeGHA, TypeS3, TypeAzblob}
}

// dirs says in which direction a key is honoured.
type dirs uint8

const (
	onImport dirs = 1 << iota
	onExport
	both = onImport | onExport
)

func (d dirs) has(dir Direction) bool {
	if dir == Import {
		return d&onImport != 0
	}
	return d&onExport != 0
}

// key describes one attribute a backend reads.
type key struct {
	dirs  dirs
	check func(v string) error // nil: any value
}

// backend is what one BuildKit cache backend reads from its attrs. Every
// key here was checked against the v0.34.2 sources in
// cache/remotecache/<type>, control/control.go (mode, ignore-error) and
// client/solve.go (local tag, reset, digest).
type backend struct {
	keys                 map[string]key
	requiredOnImport     []string
	requiredOnExport     []string
	importUnsupportedMsg string // set when BuildKit has no importer
}

// DataPlaneKey is the gha attribute that selects who moves the bytes:
// BuildKit's own gha backend talking to a cache endpoint bkcache serves on
// the runner (DataPlaneEndpoint, the default when the key is unset; a
// daemon that cannot reach the runner takes the session path), bkcache
// over the BuildKit session (true), or BuildKit's own gha backend (false).
// bkcache removes it before BuildKit sees the entry.
const DataPlaneKey = "dataplane"

// DataPlaneEndpoint is the DataPlaneKey value for the cache endpoint.
const DataPlaneEndpoint = "endpoint"

// exportCommon are read by control.go for every exporter.
var exportCommon = map[string]key{
	"mode":         {onExport, enum("min", "max")},
	"ignore-error": {onExport, boolean},
}

// compressionKeys are read by util/compression.ParseAttributes, which the
// registry, local and s3 exporters call. azblob, gha and inline hard-code
// the default compression and ignore these silently.
var compressionKeys = map[string]key{
	"compression":       {onExport, enum(compressionTypes...)},
	"compression-level": {onExport, integer}, // range checked with compression
	"force-compression": {onExport, boolean},
}

// ociKeys are read only by the registry and local exporters.
var ociKeys = map[string]key{
	"oci-mediatypes": {onExport, boolean},
	"image-manifest": {onExport, boolean},
}

var compressionTypes = []string{"uncompressed", "gzip", "estargz", "zstd"}

var backends = map[string]backend{
	TypeInline: {
		keys:                 merge(exportCommon),
		importUnsupportedMsg: "BuildKit has no inline importer; import the pushed image with type=registry,ref=<image>",
	},
	TypeRegistry: {
		keys: merge(exportCommon, compressionKeys, ociKeys, map[string]key{
			"ref":               {both, nil}, // checked by checkRef
			"registry.insecure": {both, boolean},
		}),
		requiredOnImport: []string{"ref"},
		requiredOnExport: []string{"ref"},
	},
	TypeLocal: {
		keys: merge(exportCommon, compressionKeys, ociKeys, map[string]key{
			"src":    {onImport, nil},
			"digest": {onImport, digestValue},
			"dest":   {onExport, nil},
			"tag":    {both, nonEmpty},
			"reset":  {onExport, boolean},
		}),
		requiredOnImport: []string{"src"},
		requiredOnExport: []string{"dest"},
	},
	TypeGHA: {
		keys: merge(exportCommon, map[string]key{
			"scope":      {both, nonEmpty},
			"timeout":    {both, duration},
			"token":      {both, nil},
			"url":        {both, httpURL},
			"url_v2":     {both, httpURL},
			"repository": {both, nil},
			"ghtoken":    {both, nil},
			"version":    {both, enum("1", "2")},
			// bkcache's own: false hands the entry to BuildKit's gha
			// backend instead of bkcache's data plane (internal/buildjob).
			DataPlaneKey: {both, dataPlaneValue},
		}),
	},
	TypeS3: {
		keys: merge(exportCommon, compressionKeys, map[string]key{
			"bucket":                  {both, nonEmpty},
			"region":                  {both, nonEmpty},
			"prefix":                  {both, nil},
			"manifests_prefix":        {both, nil},
			"blobs_prefix":            {both, nil},
			"name":                    {both, nonEmpty},
			"endpoint_url":            {both, httpURL},
			"access_key_id":           {both, nil},
			"secret_access_key":       {both, nil},
			"session_token":           {both, nil},
			"use_path_style":          {both, boolean},
			"disable_accept_encoding": {both, boolean},
			"retry_mode":              {both, enum("standard", "adaptive")},
			"retry_max_attempts":      {both, positive},
			"touch_refresh":           {onExport, duration},
			"upload_parallelism":      {onExport, positive},
		}),
		requiredOnImport: []string{"bucket", "region"},
		requiredOnExport: []string{"bucket", "region"},
	},
	TypeAzblob: {
		keys: merge(exportCommon, map[string]key{
			"account_url":       {both, httpURL},
			"account_name":      {both, nonEmpty},
			"container":         {both, nonEmpty},
			"prefix":            {both, nil},
			"manifests_prefix":  {both, nil},
			"blobs_prefix":      {both, nil},
			"name":              {both, nonEmpty},
			"secret_access_key": {both, nil},
		}),
		requiredOnImport: []string{"account_url"},
		requiredOnExport: []string{"account_url"},
	},
}

func merge(ms ...map[string]key) map[string]key {
	out := map[string]key{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// AllowedKeys returns the sorted attribute keys typ honours in dir, or nil
// for an unknown type.
func AllowedKeys(typ string, dir Direction) []string {
	b, ok := backends[typ]
	if !ok {
		return nil
	}
	var out []string
	for k, spec := range b.keys {
		if spec.dirs.has(dir) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Allows reports whether typ honours key k in dir.
func Allows(typ, k string, dir Direction) bool {
	spec, ok := backends[typ].keys[k]
	return ok && spec.dirs.has(dir)
}

// RequiredKeys returns the keys typ needs in dir.
func RequiredKeys(typ string, dir Direction) []string {
	b := backends[typ]
	if dir == Import {
		return slices.Clone(b.requiredOnImport)
	}
	return slices.Clone(b.requiredOnExport)
}

// secretKeys hold credentials; their values never reach a log.
// access_key_id is not strictly secret but identifies an account; it is
// masked too.
var secretKeys = []string{"access_key_id", "ghtoken", "secret_access_key", "session_token", "token"}

// IsSecretKey reports whether k's value is a credential.
func IsSecretKey(k string) bool { return slices.Contains(secretKeys, k) }

// Value checks.

var errBadValue = errors.New("invalid value")

func enum(allowed ...string) func(string) error {
	return func(v string) error {
		if slices.Contains(allowed, v) {
			return nil
		}
		return fmt.Errorf("%w %q: want %s", errBadValue, v, strings.Join(allowed, "|"))
	}
}

// boolean follows strconv.ParseBool, as BuildKit does.
func boolean(v string) error {
	if _, err := strconv.ParseBool(v); err != nil {
		return fmt.Errorf("%w %q: want true|false", errBadValue, v)
	}
	return nil
}

func dataPlaneValue(v string) error {
	if v == DataPlaneEndpoint || boolean(v) == nil {
		return nil
	}
	return fmt.Errorf("%w %q: want true|false|endpoint", errBadValue, v)
}

func integer(v string) error {
	if _, err := strconv.Atoi(v); err != nil {
		return fmt.Errorf("%w %q: want an integer", errBadValue, v)
	}
	return nil
}

func positive(v string) error {
	if n, err := strconv.Atoi(v); err != nil || n < 1 {
		return fmt.Errorf("%w %q: want a positive integer", errBadValue, v)
	}
	return nil
}

func duration(v string) error {
	if _, err := time.ParseDuration(v); err != nil {
		return fmt.Errorf("%w %q: want a duration such as 10m or 24h", errBadValue, v)
	}
	return nil
}

func nonEmpty(v string) error {
	if v == "" {
		return fmt.Errorf("%w: empty", errBadValue)
	}
	return nil
}

var digestRE = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)

func digestValue(v string) error {
	if !digestRE.MatchString(v) {
		return fmt.Errorf("%w %q: want a digest such as sha256:<hex>", errBadValue, v)
	}
	return nil
}

// httpURL refuses anything BuildKit's HTTP clients cannot use. The value
// is never echoed: it may carry a SAS signature or a password.
func httpURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: want an http(s) URL", errBadValue)
	}
	return nil
}

// checkRef validates a registry ref the way BuildKit's canonicalizeRef
// does. distribution/reference is already in BuildKit's dependency graph
// and is the parser BuildKit itself uses, so refs we accept it accepts.
func checkRef(v string) error {
	if _, err := reference.ParseNormalizedNamed(v); err != nil {
		return fmt.Errorf("%w %q: want an image reference such as ghcr.io/owner/app:cache (%v)", errBadValue, v, err)
	}
	return nil
}

// CheckRepository checks that a registry ref names a repository without a
// tag or digest, as a `cache:` line must (the tag is added per scope).
func CheckRepository(v string) error {
	named, err := reference.ParseNormalizedNamed(v)
	if err != nil {
		return fmt.Errorf("%w %q: want a repository such as ghcr.io/owner/app-cache (%v)", errBadValue, v, err)
	}
	if _, ok := named.(reference.Tagged); ok {
		return fmt.Errorf("%w %q: want a repository without a tag (one tag per scope is added)", errBadValue, v)
	}
	if _, ok := named.(reference.Digested); ok {
		return fmt.Errorf("%w %q: want a repository without a digest (one tag per scope is added)", errBadValue, v)
	}
	return nil
}

// canonicalRef is the ref BuildKit pushes to: normalized, ":latest" added.
func canonicalRef(v string) string {
	named, err := reference.ParseNormalizedNamed(v)
	if err != nil {
		return v
	}
	return reference.TagNameOnly(named).String()
}
