package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The size limits STYLE.md sets for product code: a file a newcomer can
// read in one sitting, a function that fits on a screen or two.
const (
	maxFileLines = 600
	maxFuncLines = 100
)

// pendingSizes names product functions still over maxFuncLines ("path:Func"
// or "path:Recv.Method") whose split is under way on another branch.
// TEMPORARY: the integrator removes each entry when merging the branch
// named beside it; the test then fails if the split did not land.
var pendingSizes = map[string]string{}

// TestProductSizes fails naming every product Go file (not a test, not
// generated, not vendored under third_party) over maxFileLines lines and
// every function in one over maxFuncLines lines, from `func` to its
// closing brace.
func TestProductSizes(t *testing.T) {
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not at %s: %v", root, err)
	}
	seen := map[string]bool{}
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || name == "third_party" || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, rel, src, parser.ParseComments)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) {
			return nil
		}
		files++
		if n := bytes.Count(src, []byte("\n")); n > maxFileLines {
			t.Errorf("%s: %d lines (at most %d): split it by concern", rel, n, maxFileLines)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			key := rel + ":" + funcName(fn)
			n := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			if branch, ok := pendingSizes[key]; ok {
				seen[key] = true
				if n > maxFuncLines {
					t.Logf("%s: %d lines, pending on branch %s", key, n, branch)
					continue
				}
			}
			if n > maxFuncLines {
				t.Errorf("%s (line %d): %d lines (at most %d): split it", key, fset.Position(fn.Pos()).Line, n, maxFuncLines)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("read only %d product files under %s", files, root)
	}
	for key := range pendingSizes {
		if !seen[key] {
			t.Errorf("pendingSizes names %s, which no longer exists: remove the entry", key)
		}
	}
}

// funcName is "Func" or "Recv.Method" (pointer and type parameters left out).
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	t := fn.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}
