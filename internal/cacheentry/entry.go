// Package cacheentry parses and validates BuildKit cache import/export
// entries written in buildx CSV syntax (`type=registry,ref=…,mode=max`),
// against what each backend of BuildKit v0.34.2 actually reads. It is pure:
// no I/O, no environment, no BuildKit import. Entry has the shape of
// client.CacheOptionsEntry so the buildkit package converts it field by field.
package cacheentry

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bkcache/bkcache/internal/redact"
	// go-csvvalue is buildx's CSV field splitter (util/buildflags/cache.go)
	// and already in BuildKit's dependency graph; using it keeps our quoting
	// rules identical to buildx's.
	"github.com/tonistiigi/go-csvvalue"
)

// Direction says whether an entry imports (cache-from) or exports (cache-to).
type Direction int

const (
	Import Direction = iota
	Export
)

// String returns the buildx flag name for d: "cache-from" or "cache-to".
func (d Direction) String() string {
	if d == Import {
		return "cache-from"
	}
	return "cache-to"
}

// Errors, for errors.Is. Messages add the details.
var (
	ErrSyntax       = errors.New("invalid syntax")
	ErrUnknownType  = errors.New("unknown cache type")
	ErrUnknownKey   = errors.New("unknown key")
	ErrUnsupported  = errors.New("not supported")
	ErrMissingKey   = errors.New("missing required key")
	ErrInvalidValue = errBadValue
	ErrConflict     = errors.New("conflicting entries")
)

// Entry is one cache import or export. Attrs is never nil after Parse.
type Entry struct {
	Type  string
	Attrs map[string]string
}

// Parse parses one buildx cache entry and validates it for dir. Like buildx
// it accepts the short form "user/app:cache" for type=registry,ref=… and
// lower-cases keys. Unlike buildx and BuildKit it refuses unknown keys,
// keys the backend ignores, repeated keys and bad values. Errors never
// contain secret values; the caller adds which input the entry came from.
func Parse(csv string, dir Direction) (Entry, error) {
	e, err := ParseSyntax(csv)
	if err != nil {
		return Entry{}, err
	}
	if err := e.Validate(dir); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// ParseLine parses one cache-from or cache-to line the way buildx's
// ParseCacheEntry does: a line without "=" may list several registry refs,
// each its own entry ("a/b:c,d/e:f"). Every entry is validated for dir.
func ParseLine(line string, dir Direction) ([]Entry, error) {
	in := strings.TrimSpace(line)
	if in != "" && !strings.Contains(in, "=") {
		refs, err := csvvalue.Fields(in, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
		}
		var out []Entry
		for _, r := range refs {
			e, err := Parse(r, dir)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	}
	e, err := Parse(in, dir)
	if err != nil {
		return nil, err
	}
	return []Entry{e}, nil
}

// ParseSyntax parses the CSV into an Entry with a known type, checking
// syntax only: keys are not checked against the backend. Use Parse unless
// the entry is a template that is completed before use (a `cache:` line).
func ParseSyntax(csv string) (Entry, error) {
	in := strings.TrimSpace(csv)
	if in == "" {
		return Entry{}, fmt.Errorf("%w: empty entry", ErrSyntax)
	}
	fields, err := csvvalue.Fields(in, nil)
	if err != nil { // a csv.ParseError names the column only, never the text
		return Entry{}, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	if !strings.Contains(in, "=") {
		if len(fields) != 1 {
			return Entry{}, fmt.Errorf("%w: %d refs in one entry; write one entry per line", ErrSyntax, len(fields))
		}
		return Entry{Type: TypeRegistry, Attrs: map[string]string{"ref": fields[0]}}, nil
	}
	e := Entry{Attrs: map[string]string{}}
	seenType := false
	for i, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Entry{}, fmt.Errorf("%w: field %d is not key=value", ErrSyntax, i+1)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		switch {
		case k == "":
			return Entry{}, fmt.Errorf("%w: field %d has an empty key", ErrSyntax, i+1)
		case k == "type" && seenType, k != "type" && hasKey(e.Attrs, k):
			return Entry{}, fmt.Errorf("%w: key %q given twice", ErrSyntax, k)
		case k == "type":
			e.Type, seenType = strings.TrimSpace(v), true
		default:
			e.Attrs[k] = v
		}
	}
	if !seenType {
		return Entry{}, fmt.Errorf("%w: missing type=%s", ErrSyntax, strings.Join(Types(), "|"))
	}
	if _, ok := backends[e.Type]; !ok {
		return Entry{}, fmt.Errorf("%w %q: want %s", ErrUnknownType, e.Type, strings.Join(Types(), "|"))
	}
	return e, nil
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// Validate checks e as an entry for dir: known type, keys the backend
// honours in that direction, required keys, values and the rules that
// tie keys together.
func (e Entry) Validate(dir Direction) error {
	b, ok := backends[e.Type]
	if !ok {
		return fmt.Errorf("%w %q: want %s", ErrUnknownType, e.Type, strings.Join(Types(), "|"))
	}
	if dir == Import && b.importUnsupportedMsg != "" {
		return fmt.Errorf("type=%s as %s: %w: %s", e.Type, dir, ErrUnsupported, b.importUnsupportedMsg)
	}
	for _, k := range slices.Sorted(maps.Keys(e.Attrs)) {
		v := e.Attrs[k]
		// No attribute needs one, and a newline would split an output line.
		if strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return fmt.Errorf("%s: key %q: %w: contains a control character (newline, tab, ...)", e.Type, k, ErrInvalidValue)
		}
		spec, ok := b.keys[k]
		if !ok {
			if others := typesWithKey(k); len(others) > 0 {
				return fmt.Errorf("%s: key %q %w (BuildKit ignores it for %s; supported by %s)",
					e.Type, k, ErrUnsupported, e.Type, strings.Join(others, ", "))
			}
			return fmt.Errorf("%s: %w %q (allowed in %s: %s)",
				e.Type, ErrUnknownKey, k, dir, strings.Join(AllowedKeys(e.Type, dir), ", "))
		}
		if !spec.dirs.has(dir) {
			return fmt.Errorf("%s: key %q %w in %s (only in %s)", e.Type, k, ErrUnsupported, dir, otherDir(dir))
		}
		check := spec.check
		if e.Type == TypeRegistry && k == "ref" {
			check = checkRef
		}
		if check != nil {
			if err := check(v); err != nil {
				return fmt.Errorf("%s: key %q: %w", e.Type, k, err)
			}
		}
	}
	required := RequiredKeys(e.Type, dir)
	for _, k := range required {
		if e.Attrs[k] == "" {
			who := e.Type
			if !slices.Equal(required, RequiredKeys(e.Type, otherDir(dir))) {
				who += " " + dir.String()
			}
			return fmt.Errorf("%s: %w %q (%s needs %s)", e.Type, ErrMissingKey, k, who, strings.Join(required, ", "))
		}
	}
	return e.checkCombinations()
}

func otherDir(d Direction) Direction {
	if d == Import {
		return Export
	}
	return Import
}

func typesWithKey(k string) []string {
	var out []string
	for _, t := range Types() {
		if _, ok := backends[t].keys[k]; ok {
			out = append(out, t)
		}
	}
	return out
}

// checkCombinations enforces rules that span keys.
func (e Entry) checkCombinations() error {
	a := e.Attrs
	if e.Type == TypeInline && a["mode"] == "max" {
		return fmt.Errorf("inline: key \"mode\": %w \"max\": inline cache supports mode=min only; use type=registry for mode=max", ErrInvalidValue)
	}
	if lvl, ok := a["compression-level"]; ok {
		n, _ := strconv.Atoi(lvl) // checked by integer
		max := 0
		switch a["compression"] {
		case "gzip", "estargz":
			max = 9
		case "zstd":
			max = 22
		case "":
			return fmt.Errorf("%s: key \"compression-level\" needs compression=gzip|estargz|zstd", e.Type)
		default:
			return fmt.Errorf("%s: key \"compression-level\" does not apply to compression=%s (want gzip|estargz|zstd)", e.Type, a["compression"])
		}
		if n < 0 || n > max {
			return fmt.Errorf("%s: key \"compression-level\": %w %q: want 0-%d for compression=%s", e.Type, ErrInvalidValue, lvl, max, a["compression"])
		}
	}
	// BuildKit: "OCI mediatypes are required for image-manifest cache
	// format" (cache/remotecache/export.go NewExportableCache).
	if im, _ := strconv.ParseBool(a["image-manifest"]); im {
		if oci, err := strconv.ParseBool(a["oci-mediatypes"]); err == nil && !oci {
			return fmt.Errorf("%s: image-manifest=true needs oci-mediatypes=true (BuildKit refuses it)", e.Type)
		}
	}
	return nil
}

// Equal reports whether e and o have the same type and attributes; a nil
// and an empty Attrs are equal.
func (e Entry) Equal(o Entry) bool {
	return e.Type == o.Type && maps.Equal(e.Attrs, o.Attrs)
}

// Clone returns a deep copy of e.
func (e Entry) Clone() Entry {
	c := Entry{Type: e.Type, Attrs: maps.Clone(e.Attrs)}
	if c.Attrs == nil {
		c.Attrs = map[string]string{}
	}
	return c
}

// String returns e in buildx CSV: type first, then the keys that locate the
// cache (ref, src, dest, scope, bucket, account_url, name), then the others
// sorted, each field
// quoted when its value would not survive unquoted. Parse(e.String()) == e.
func (e Entry) String() string { return e.format(func(_, v string) string { return v }) }

// Redacted is String with credentials replaced by "***" and the query
// string, fragment and password of every URL value removed (Azure SAS,
// presigned URLs). Use it for anything a person or a log can see.
func (e Entry) Redacted() string {
	return e.format(func(k, v string) string {
		if IsSecretKey(k) {
			return redact.Mask
		}
		if strings.Contains(v, "://") {
			return redact.URL(v)
		}
		return v
	})
}

func (e Entry) format(value func(k, v string) string) string {
	var b strings.Builder
	writeField(&b, "type", e.Type)
	for _, k := range slices.SortedFunc(maps.Keys(e.Attrs), byLocationFirst) {
		b.WriteByte(',')
		writeField(&b, k, value(k, e.Attrs[k]))
	}
	return b.String()
}

// locationKeys name where an entry's cache is; a line shows them right
// after its type, so that the part a reader looks for comes first.
var locationKeys = []string{"ref", "src", "dest", "scope", "bucket", "account_url", "name"}

func byLocationFirst(a, b string) int {
	ia, ib := slices.Index(locationKeys, a), slices.Index(locationKeys, b)
	switch {
	case ia >= 0 && ib >= 0:
		return ia - ib
	case ia >= 0:
		return -1
	case ib >= 0:
		return 1
	}
	return strings.Compare(a, b)
}

func writeField(b *strings.Builder, k, v string) {
	f := k + "=" + v
	if !needsQuote(v) {
		b.WriteString(f)
		return
	}
	b.WriteByte('"')
	b.WriteString(strings.ReplaceAll(f, `"`, `""`))
	b.WriteByte('"')
}

// needsQuote: commas and quotes split or break the field; CR/LF and
// trailing space would be trimmed off the end of a line.
func needsQuote(v string) bool {
	if strings.ContainsAny(v, ",\"\r\n") {
		return true
	}
	if r, _ := utf8.DecodeLastRuneInString(v); r != utf8.RuneError && unicode.IsSpace(r) {
		return true
	}
	return false
}

// Secrets returns the values in e that must be masked wherever text is
// shown: credential values, and the query strings and passwords of URLs.
func (e Entry) Secrets() []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(e.Attrs)) {
		v := e.Attrs[k]
		if v == "" {
			continue
		}
		if IsSecretKey(k) {
			out = append(out, v)
			continue
		}
		if !strings.Contains(v, "://") {
			continue
		}
		if u, err := url.Parse(v); err == nil {
			if u.RawQuery != "" {
				out = append(out, u.RawQuery)
			}
			if p, ok := u.User.Password(); ok && p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// As converts entries to another type of Entry's shape, such as BuildKit's
// client.CacheOptionsEntry, which buildkit.Request takes.
func As[E ~struct {
	Type  string
	Attrs map[string]string
}](es []Entry) []E {
	out := make([]E, len(es))
	for i, e := range es {
		out[i] = E(e)
	}
	return out
}

// Secrets lists the secrets (Entry.Secrets) of every entry in lists. It
// also takes BuildKit's client.CacheOptionsEntry, which has Entry's shape,
// so the buildkit package masks by the same rules without this package
// importing BuildKit.
func Secrets[E ~struct {
	Type  string
	Attrs map[string]string
}](lists ...[]E) []string {
	var out []string
	for _, es := range lists {
		for _, e := range es {
			out = append(out, Entry(e).Secrets()...)
		}
	}
	return out
}

// WithDefaults returns a copy of e with bkcache's defaults filled in where
// the user set nothing. Exports: mode=max (inline: min, the only mode it
// has) and ignore-error=true, so a cache outage never fails a build.
// Imports are returned unchanged.
func WithDefaults(e Entry, dir Direction) Entry {
	c := e.Clone()
	if dir != Export {
		return c
	}
	if _, ok := c.Attrs["mode"]; !ok {
		c.Attrs["mode"] = "max"
		if c.Type == TypeInline {
			c.Attrs["mode"] = "min"
		}
	}
	if _, ok := c.Attrs["ignore-error"]; !ok {
		c.Attrs["ignore-error"] = "true"
	}
	return c
}
