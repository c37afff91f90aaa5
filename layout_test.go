package main

import (
	"errors"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/bkcache/bkcache"

// layers lists the product's packages from the top down, as
// docs/ARCHITECTURE.md draws them: a package may import only packages of
// lower layers. Pure packages sit at the bottom, so they can never import
// one that does I/O.
var layers = [][]string{
	{"."},
	{"internal/cli"},
	{"internal/buildjob"},
	{"internal/config", "internal/ghaction"},
	{"ghacache/contentstore", "ghacache/endpoint", "internal/mountstore"},
	{"buildkit", "ghacache", "ghacache/emulator", "internal/contexthash"},
	{"buildkit/mountarchive"},
	{"internal/plan", "internal/cachemount", "internal/explain"},
	{"scope", "internal/cacheentry"},
	{"internal/runnerenv", "internal/redact"},
}

// unlayered are tools and test support: they may import anything, and no
// product package may import them.
var unlayered = []string{
	"bench", "bench/churn", "bench/mounts", "bench/real", "bench/internal/rig", "cmd/gha-cache-emulator",
	"internal/testenv", "internal/ghaction/ghactiontest", "internal/contract",
	"e2e", "e2e/act", "e2e/builders", "e2e/ghaaction", "ghacache/fidelity",
}

// public are the packages other modules may use.
var public = []string{"buildkit", "buildkit/mountarchive", "ghacache", "ghacache/contentstore", "ghacache/endpoint", "ghacache/emulator", "scope"}

// modulePackages returns the module's packages that have non-test Go
// files, by directory relative to the module root.
func modulePackages(t *testing.T) map[string]*build.Package {
	t.Helper()
	pkgs := map[string]*build.Package{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(path, 0)
		var noGo *build.NoGoError
		if errors.As(err, &noGo) {
			return nil
		}
		if err != nil {
			return err
		}
		pkgs[filepath.ToSlash(path)] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func layerOf(dir string) int {
	for i, l := range layers {
		if slices.Contains(l, dir) {
			return i
		}
	}
	return -1
}

// TestImportDirection keeps the package graph of docs/ARCHITECTURE.md:
// every package has a place, and imports point down the layers.
func TestImportDirection(t *testing.T) {
	for dir, p := range modulePackages(t) {
		from := layerOf(dir)
		if from < 0 && !slices.Contains(unlayered, dir) {
			t.Errorf("package %s has no place in layout_test.go (and docs/ARCHITECTURE.md): add it to a layer or to unlayered", dir)
			continue
		}
		for _, imp := range p.Imports {
			rel, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			if from < 0 {
				continue // tools and test support import what they need
			}
			to := layerOf(rel)
			switch {
			case to < 0:
				t.Errorf("%s imports %s, which is a tool or test support", dir, rel)
			case to <= from:
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must point down the layers", dir, from, rel, to)
			}
		}
	}
}

// TestPublicAPIHasNoInternalTypes: the exported declarations of a public
// package mention no type from an internal package, so other modules can
// use all of them.
func TestPublicAPIHasNoInternalTypes(t *testing.T) {
	pkgs := modulePackages(t)
	for _, dir := range public {
		p := pkgs[dir]
		if p == nil {
			t.Fatalf("public package %s not found", dir)
		}
		fset := token.NewFileSet()
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			internal := map[string]bool{} // local names of internal imports
			for _, is := range f.Imports {
				path, _ := strconv.Unquote(is.Path.Value)
				if !strings.HasPrefix(path, module+"/internal/") {
					continue
				}
				local := filepath.Base(path)
				if is.Name != nil {
					local = is.Name.Name
				}
				internal[local] = true
			}
			if len(internal) == 0 {
				continue
			}
			for _, node := range exportedAPI(f) {
				ast.Inspect(node, func(n ast.Node) bool {
					if sel, ok := n.(*ast.SelectorExpr); ok {
						if x, ok := sel.X.(*ast.Ident); ok && internal[x.Name] {
							t.Errorf("%s: exported API uses %s.%s from an internal package", fset.Position(sel.Pos()), x.Name, sel.Sel.Name)
						}
					}
					return true
				})
			}
		}
	}
}

// exportedAPI returns the parts of f other modules see: the signatures of
// exported functions and methods, exported types (without their unexported
// fields), and the types of exported variables and constants.
func exportedAPI(f *ast.File) []ast.Node {
	var out []ast.Node
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Name.IsExported() && (d.Recv == nil || exportedReceiver(d.Recv)) {
				out = append(out, d.Type)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() {
						out = append(out, exportedFields(s.Type))
					}
				case *ast.ValueSpec:
					if s.Type != nil && slices.ContainsFunc(s.Names, (*ast.Ident).IsExported) {
						out = append(out, s.Type)
					}
				}
			}
		}
	}
	return out
}

func exportedReceiver(recv *ast.FieldList) bool {
	t := recv.List[0].Type
	if star, ok := t.(*ast.StarExpr); ok {
		t = star.X
	}
	if idx, ok := t.(*ast.IndexExpr); ok {
		t = idx.X
	}
	id, ok := t.(*ast.Ident)
	return ok && id.IsExported()
}

// exportedFields drops a struct's unexported fields; other types are kept.
func exportedFields(t ast.Expr) ast.Node {
	st, ok := t.(*ast.StructType)
	if !ok {
		return t
	}
	kept := &ast.FieldList{}
	for _, f := range st.Fields.List {
		if len(f.Names) == 0 || slices.ContainsFunc(f.Names, (*ast.Ident).IsExported) {
			kept.List = append(kept.List, f)
		}
	}
	return &ast.StructType{Fields: kept}
}
