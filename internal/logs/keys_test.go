package logs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// logKey is one slog attribute key written in the module's sources.
type logKey struct {
	key string
	pos token.Position
}

// loggerMethods are the *slog.Logger methods that take key-value pairs,
// with the number of leading arguments that are not pairs.
var loggerMethods = map[string]int{
	"Debug": 1, "Info": 1, "Warn": 1, "Error": 1,
	"DebugContext": 2, "InfoContext": 2, "WarnContext": 2, "ErrorContext": 2,
	"Log": 3, "LogAttrs": 3, "With": 0,
}

// attrFuncs are the slog functions that build one attribute from a key.
var attrFuncs = map[string]bool{
	"String": true, "Int": true, "Int64": true, "Uint64": true, "Float64": true,
	"Bool": true, "Time": true, "Duration": true, "Any": true, "Group": true,
}

// isLogger says whether x reads like a logger: gitgw's loggers are named
// log, logger or Logger (a field, a variable, or a call such as
// newLogger(...)), so the scan needs no type checking.
func isLogger(x ast.Expr) bool {
	switch x := x.(type) {
	case *ast.Ident:
		return isLoggerName(x.Name)
	case *ast.SelectorExpr:
		return isLoggerName(x.Sel.Name)
	case *ast.CallExpr:
		switch f := x.Fun.(type) {
		case *ast.Ident:
			return isLoggerName(f.Name)
		case *ast.SelectorExpr:
			// a chain: log.With(...).Info(...)
			if _, ok := loggerMethods[f.Sel.Name]; ok {
				return isLogger(f.X)
			}
			return isLoggerName(f.Sel.Name)
		}
	}
	return false
}

func isLoggerName(n string) bool {
	n = strings.ToLower(n)
	return n == "log" || n == "logger" || strings.HasSuffix(n, "logger")
}

// isSlogLogger says whether x is the type *slog.Logger.
func isSlogLogger(x ast.Expr) bool {
	st, ok := x.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := st.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "slog" && sel.Sel.Name == "Logger"
}

// isAttrCall says whether x is slog.String(...) and the like.
func isAttrCall(x ast.Expr) (*ast.CallExpr, bool) {
	c, ok := x.(*ast.CallExpr)
	if !ok {
		return nil, false
	}
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return nil, false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return c, ok && pkg.Name == "slog" && attrFuncs[sel.Sel.Name]
}

// scanKeys returns every attribute key literal given to a logger in the
// non-test Go files under root, and the places the scan is blind to: a key
// that is not a literal, and a logger under a name isLogger does not know
// (a field, parameter or variable of type *slog.Logger, or one made by
// With).
func scanKeys(root string) (keys []logKey, blind []token.Position, err error) {
	fset := token.NewFileSet()
	lit := func(x ast.Expr) (string, bool) {
		b, ok := x.(*ast.BasicLit)
		if !ok || b.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(b.Value)
		return s, err == nil
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Field:
				if isSlogLogger(n.Type) {
					for _, id := range n.Names {
						if !isLoggerName(id.Name) {
							blind = append(blind, fset.Position(id.Pos()))
						}
					}
				}
			case *ast.AssignStmt:
				for i, r := range n.Rhs {
					if c, ok := r.(*ast.CallExpr); ok && i < len(n.Lhs) {
						if sel, ok := c.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "With" && isLogger(sel.X) && !isLogger(n.Lhs[i]) {
							blind = append(blind, fset.Position(n.Lhs[i].Pos()))
						}
					}
				}
			}
			c, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if a, ok := isAttrCall(c); ok && len(a.Args) > 0 {
				if k, ok := lit(a.Args[0]); ok {
					keys = append(keys, logKey{k, fset.Position(a.Args[0].Pos())})
				} else {
					blind = append(blind, fset.Position(a.Args[0].Pos()))
				}
				return true
			}
			sel, ok := c.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			skip, ok := loggerMethods[sel.Sel.Name]
			if !ok || !isLogger(sel.X) || len(c.Args) < skip || c.Ellipsis.IsValid() {
				return true
			}
			args := c.Args[skip:]
			for i := 0; i < len(args); i++ {
				if _, ok := isAttrCall(args[i]); ok {
					continue // one attribute: its key is seen on its own
				}
				if k, ok := lit(args[i]); ok {
					keys = append(keys, logKey{k, fset.Position(args[i].Pos())})
				} else {
					blind = append(blind, fset.Position(args[i].Pos()))
				}
				i++ // the value
			}
			return true
		})
		return nil
	})
	return keys, blind, err
}

// TestScanKeys shows that the scan finds keys in every form a logger is
// called with, so that TestKeyVocabulary's silence means something.
func TestScanKeys(t *testing.T) {
	keys, blind, err := scanKeys("testdata/scan")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, k.key)
	}
	sort.Strings(got)
	want := []string{"a_with", "b_info", "c_multiline", "d_attr", "e_logattrs", "f_ctx", "g_chain", "h_logger", "i_field"}
	if !slices.Equal(got, want) {
		t.Errorf("keys = %q\nwant   %q", got, want)
	}
	var lines []int
	for _, p := range blind {
		lines = append(lines, p.Line)
	}
	if want := []int{13, 14, 26}; !slices.Equal(lines, want) {
		t.Errorf("blind at lines %v, want %v", lines, want)
	}
}

// TestKeyVocabulary fails on an attribute key outside the vocabulary
// (keys.go) or on a known synonym of one in it.
func TestKeyVocabulary(t *testing.T) {
	for s, use := range synonyms {
		if _, ok := vocabulary[s]; ok {
			t.Errorf("%q is both in the vocabulary and a synonym of %q", s, use)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	keys, blind, err := scanKeys(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 100 {
		t.Fatalf("only %d keys found in %s: is the scan blind?", len(keys), root)
	}
	rel := func(p token.Position) string {
		if r, err := filepath.Rel(root, p.Filename); err == nil {
			p.Filename = r
		}
		return p.String()
	}
	// This package's handler passes on the keys it is given.
	own := func(p token.Position) bool {
		return filepath.Dir(p.Filename) == filepath.Join(root, "internal", "logs")
	}
	for _, p := range blind {
		if !own(p) {
			t.Errorf("%s: the key check is blind here: give attribute keys as string literals, to a logger named log or logger", rel(p))
		}
	}
	for _, k := range keys {
		if use, ok := synonyms[k.key]; ok {
			t.Errorf("%s: key %q: use %s", rel(k.pos), k.key, use)
			continue
		}
		if _, ok := vocabulary[k.key]; !ok {
			t.Errorf("%s: key %q is not in the vocabulary (internal/logs/keys.go): use a key there, or add it with what it holds", rel(k.pos), k.key)
		}
	}
}
