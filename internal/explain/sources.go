package explain

import (
	"bytes"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// ContextSources returns the context paths the Dockerfile's COPY and ADD
// instructions and RUN --mount=type=bind mounts read (not COPY --from or
// a mount's from=, not ADD of a URL or git repository),
// parsed with BuildKit's own parser, in all stages. A source with a
// variable in it cannot be resolved without the frontend's expansion, so
// it counts as "." (the whole context).
func ContextSources(dockerfile []byte) ([]string, error) {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, fmt.Errorf("parsing the Dockerfile: %w", err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("parsing the Dockerfile: %w", err)
	}
	seen := map[string]bool{}
	var out []string
	add := func(srcs []string) {
		for _, s := range srcs {
			if isRemote(s) {
				continue
			}
			if strings.Contains(s, "$") {
				s = "."
			}
			s = path.Clean(strings.TrimPrefix(s, "/"))
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	for _, st := range stages {
		for _, cmd := range st.Commands {
			switch c := cmd.(type) {
			case *instructions.CopyCommand:
				if c.From == "" {
					add(c.SourcePaths)
				}
			case *instructions.AddCommand:
				add(c.SourcePaths)
			case *instructions.RunCommand:
				// RUN --mount=type=bind without from= reads the context too.
				for _, m := range instructions.GetMounts(c) {
					if m.Type == instructions.MountTypeBind && m.From == "" {
						src := m.Source
						if src == "" {
							src = "."
						}
						add([]string{src})
					}
				}
			}
		}
	}
	return out, nil
}

func isRemote(s string) bool {
	if strings.HasPrefix(s, "git@") {
		return true
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != ""
}

// ReadBy reports whether the context path p (slash-separated, relative)
// is read by a COPY/ADD source: the source itself, a file under it, or a
// wildcard match of it or one of its parent directories. A folded
// directory entry ("dir/") counts when a source is in it or it is in a
// source.
func ReadBy(src, p string) bool { return matchSource(src, p) }

// MayHoldSources reports whether the context directory dir (relative,
// slash-separated) can hold a file a source reads, so a walk can skip the
// others.
func MayHoldSources(srcs []string, dir string) bool {
	for _, s := range srcs {
		s = path.Clean(strings.TrimPrefix(s, "/"))
		if s == "." || strings.Contains(s, "$") {
			return true
		}
		// The source's fixed part, before its first wildcard.
		var fixed []string
		for _, el := range strings.Split(s, "/") {
			if strings.ContainsAny(el, "*?[\\") {
				break
			}
			fixed = append(fixed, el)
		}
		f := strings.Join(fixed, "/")
		if f == "" || f == dir || strings.HasPrefix(f, dir+"/") || strings.HasPrefix(dir, f+"/") {
			return true
		}
	}
	return false
}
