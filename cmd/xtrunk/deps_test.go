package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// module is the module path every in-repo package starts with.
const module = "github.com/xtrunk/xtrunk/"

// goListDeps runs `go list` over the whole module and returns each
// package's transitive non-test dependencies (go list's Deps leaves test
// imports out, which is what ends up in a binary).
func goListDeps(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Deps}} {{.}}{{end}}", pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pattern, err, out)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		deps[f[0]] = f[1:]
	}
	return deps
}

// TestBinaryHasNoTestCode keeps test helpers out of the xtrunk binary:
// bench/testbed (used by xtrunk demo and xtrunk bench) must not import
// testing; the testing.TB wrappers live in bench/testbed/labtest.
func TestBinaryHasNoTestCode(t *testing.T) {
	deps := goListDeps(t, module+"cmd/xtrunk")
	bin := deps[module+"cmd/xtrunk"]
	if len(bin) == 0 {
		t.Fatal("go list gave no dependencies for cmd/xtrunk")
	}
	for _, d := range bin {
		if d == "testing" || strings.HasSuffix(d, "test") && strings.HasPrefix(d, module) {
			t.Errorf("cmd/xtrunk depends on %s", d)
		}
	}
}

// layerRules are ARCHITECTURE.md's import rules: for each package (a path
// relative to the module; "x/..." is x and everything under it) the
// in-module packages it must not depend on, directly or not. Anything not
// denied is allowed, so a new leaf package needs no entry.
var layerRules = []struct {
	pkg  string
	deny []string
}{
	{"control/domain/...", []string{"..."}},
	// AF_XDP rings: a leaf over x/sys, nothing of ours.
	{"relay/xsk/...", []string{"..."}},
	// UDP receive buffers and their drop counters: a leaf over x/sys.
	{"control/sockbuf/...", []string{"..."}},
	{"control/store/...", []string{"control/ng/...", "control/api/...", "bpf/...", "relay/...", "signalling/...", "bench/...", "cmd/..."}},
	{"control/ng/...", []string{"control/store/...", "control/api/...", "bpf/...", "relay/...", "signalling/...", "bench/...", "cmd/..."}},
	{"bpf/...", []string{"control/...", "relay/...", "signalling/...", "bench/...", "cmd/..."}},
	{"relay/...", []string{"control/store/...", "control/api/...", "signalling/...", "bench/...", "cmd/..."}},
	// Signalling drives the relay over NG only; leaf libraries under
	// relay/ (sdp, wav) are shared code, the relay itself is not.
	{"signalling/...", []string{"relay", "bpf/...", "control/api/...", "bench/...", "cmd/..."}},
	// sipmsg's checks need the number rules, not the store and its
	// database drivers: those come from control/domain.
	{"signalling/sipmsg/...", []string{"control/store/..."}},
	{"control/api/...", []string{"control/ng/...", "bpf/...", "relay/...", "signalling/...", "bench/...", "cmd/..."}},
	{"bench/testbed/...", []string{"control/store/...", "control/api/...", "bpf/...", "relay/...", "signalling/...", "bench/internal/...", "bench/media/...", "bench/sip/...", "cmd/..."}},
	{"bench/...", []string{"cmd/..."}},
}

// stdlibOnly are the packages (patterns as in layerRules) that may
// depend on nothing outside the standard library.
var stdlibOnly = []string{"control/domain/..."}

// matches reports whether pkg (relative to the module) is pattern; "..."
// matches every package.
func matches(pattern, pkg string) bool {
	if pattern == "..." {
		return true
	}
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == p || strings.HasPrefix(pkg, p+"/")
	}
	return pkg == pattern
}

// TestImportLayering checks the layering ARCHITECTURE.md states, and that
// no package but a test helper (a path ending in "test": labtest,
// storetest) depends on testing.
func TestImportLayering(t *testing.T) {
	all := goListDeps(t, module+"...")
	if len(all) < 10 {
		t.Fatalf("go list found only %d packages", len(all))
	}
	for full, deps := range all {
		pkg := strings.TrimPrefix(full, module)
		for _, d := range deps {
			if d == "testing" && !strings.HasSuffix(pkg, "test") {
				t.Errorf("%s depends on testing", pkg)
			}
			for _, p := range stdlibOnly {
				// standard library paths have no dot in their first element
				if first, _, _ := strings.Cut(d, "/"); matches(p, pkg) && strings.Contains(first, ".") {
					t.Errorf("%s depends on %s (ARCHITECTURE.md: %s imports only the standard library)", pkg, d, p)
				}
			}
			dep, ok := strings.CutPrefix(d, module)
			if !ok {
				continue
			}
			for _, r := range layerRules {
				if !matches(r.pkg, pkg) {
					continue
				}
				for _, deny := range r.deny {
					if matches(deny, dep) && !matches(r.pkg, dep) {
						t.Errorf("%s depends on %s (ARCHITECTURE.md: %s must not import %s)", pkg, dep, r.pkg, deny)
					}
				}
			}
		}
	}
}

// sqlCall matches database/sql's context-taking query methods (the
// store uses no others).
var sqlCall = regexp.MustCompile(`\.(QueryContext|QueryRowContext|ExecContext|PrepareContext)\(`)

// TestNoSQLOutsideStore keeps SQL in control/store (ARCHITECTURE.md): no
// Go file elsewhere, test or not, imports database/sql or calls its query
// methods (through a handle from anywhere).
// control/store's own tests and storetest (Exec, for rows the rules
// refuse today) are inside the line.
func TestNoSQLOutsideStore(t *testing.T) {
	root := filepath.Join("..", "..")
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "third_party" || rel == "control/store" || strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			if p := strings.Trim(imp.Path.Value, `"`); p == "database/sql" || p == "database/sql/driver" {
				t.Errorf("%s imports %s: SQL belongs in control/store", rel, p)
			}
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if m := sqlCall.Find(src); m != nil {
			t.Errorf("%s calls %s", rel, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked only %d Go files", checked)
	}
}

// TestSentinelErrorsInErrorsGo keeps each package's sentinel errors
// (package-level variables set by errors.New) in its errors.go, where a
// reader looks for what a package can fail with (STYLE.md). Test files
// and third_party are exempt.
func TestSentinelErrorsInErrorsGo(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "third_party" || strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || d.Name() == "errors.go" {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for i, v := range spec.(*ast.ValueSpec).Values {
					call, ok := v.(*ast.CallExpr)
					if !ok {
						continue
					}
					if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "New" {
						if x, ok := sel.X.(*ast.Ident); ok && x.Name == "errors" {
							t.Errorf("%s: sentinel error %s belongs in errors.go", rel, spec.(*ast.ValueSpec).Names[i].Name)
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
