package cacheentry

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/bkcache/bkcache/internal/redact"
)

// ValidateSet checks a whole build's cache entries: each entry for its
// direction, inline export only with an image output (inline cache lives
// in the image config), and no two exports writing the same location
// (BuildKit would race them, or for local silently keep only one tag).
func ValidateSet(imports, exports []Entry, hasImageOutput bool) error {
	for i, e := range imports {
		if err := e.Validate(Import); err != nil {
			return fmt.Errorf("%s entry %d: %w", Import, i+1, err)
		}
	}
	seen := map[string]int{}
	for i, e := range exports {
		if err := e.Validate(Export); err != nil {
			return fmt.Errorf("%s entry %d: %w", Export, i+1, err)
		}
		if e.Type == TypeInline && !hasImageOutput {
			return fmt.Errorf("%s entry %d: type=inline %w without an image output: inline cache is stored in the image, so push it (push: true) or set an image output; or use type=registry", Export, i+1, ErrUnsupported)
		}
		for _, loc := range ExportLocations(e) {
			if j, dup := seen[loc]; dup {
				return fmt.Errorf("%s entries %d and %d: %w: both write %s", Export, j+1, i+1, ErrConflict, loc)
			}
			seen[loc] = i
		}
	}
	return nil
}

// ExportLocations names where an export writes, in a form that is equal
// for two entries exactly when they overwrite each other. The text is
// meant for errors, so it holds no credentials or URL queries.
func ExportLocations(e Entry) []string {
	a := e.Attrs
	switch e.Type {
	case TypeInline:
		return []string{"inline cache into the image"}
	case TypeRegistry:
		return []string{"registry ref " + canonicalRef(a["ref"])}
	case TypeLocal:
		// client/solve.go keys local stores by directory: a second tag on
		// the same dest replaces the first.
		return []string{"local dest " + filepath.Clean(a["dest"])}
	case TypeGHA:
		return []string{"gha scope " + orDefault(a["scope"], "buildkit")}
	case TypeS3:
		where := fmt.Sprintf("s3 bucket %q endpoint %q manifests %q", a["bucket"],
			redact.URL(a["endpoint_url"]), a["prefix"]+orDefault(a["manifests_prefix"], "manifests/"))
		return withNames(where, a["name"])
	case TypeAzblob:
		where := fmt.Sprintf("azblob account %q container %q manifests %q", azureAccount(a),
			orDefault(a["container"], "buildkit-cache"), a["prefix"]+orDefault(a["manifests_prefix"], "manifests"))
		return withNames(where, a["name"])
	}
	return nil
}

// withNames: s3 and azblob write one manifest per ";"-separated name.
func withNames(where, names string) []string {
	var out []string
	for _, n := range strings.Split(orDefault(names, "buildkit"), ";") {
		out = append(out, fmt.Sprintf("%s name %q", where, n))
	}
	return out
}

// azureAccount identifies the storage account: the account_name key, else
// the account URL's host and path (Azurite puts the account in the path).
func azureAccount(a map[string]string) string {
	if n := a["account_name"]; n != "" {
		return n
	}
	u, err := url.Parse(a["account_url"])
	if err != nil {
		return ""
	}
	return u.Host + u.Path
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
