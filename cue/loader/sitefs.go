package loader

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/load"

	"github.com/gitgw/gitgw/cue/schema"
)

// The most a site may hold in CUE files: a site at 1,000 gateway pairs is
// a few MiB. The caps keep a hostile tree from filling the agent's memory
// before evaluation starts.
const (
	maxSiteFiles = 10000
	maxSiteBytes = 64 << 20
)

// siteFS is the site as CUE sees it: the CUE files beneath the site's
// directory, read through an os.Root (so nothing above the directory is
// reachable, whatever the names say), plus the embedded schema and the
// agent file. CUE loads this in-memory copy as an overlay mounted at
// virtualRoot, a path beneath which nothing can exist on the host, so an
// import, an @embed or a symlink cannot reach a file outside the site: a
// root-only file elsewhere on the node cannot end up in an error message,
// a log line or a status commit.
type siteFS struct {
	abs   string
	pkg   string
	files map[string][]byte // by slash-separated path relative to the site
}

// virtualRoot is where the in-memory site is mounted for CUE: a name in
// procfs's root, where nothing can be created, so when CUE looks for a
// file the overlay does not hold, it finds nothing (readSite checks that
// the path does not exist). load.Config.FS would say the same more
// directly, but in cuelang.org/go v0.17.1 it cannot import a package from
// cue.mod/pkg, where the schema is mounted.
const virtualRoot = "/proc/gitgw-site"

// readSite reads the site's CUE files beneath abs. Symlinks are refused
// wherever CUE would look (a file or directory whose name does not start
// with "." or "_"), so that what a reviewer reads in the repository is
// what is evaluated. The site's own files for the schema package, if any,
// are replaced by the embedded schema.
func readSite(abs string) (*siteFS, error) {
	if _, err := os.Lstat(virtualRoot); err == nil {
		return nil, fmt.Errorf("loader: %s exists: refusing to evaluate a site where CUE could find files beside it (is /proc mounted?)", virtualRoot)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("loader: %w", err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	defer root.Close()
	if fi, err := root.Lstat("cue.mod/module.cue"); err != nil || !fi.Mode().IsRegular() {
		if err == nil {
			err = errors.New("not a regular file")
		}
		return nil, fmt.Errorf("loader: %s is not a CUE module (cue.mod/module.cue missing): %w", abs, err)
	}
	s := &siteFS{abs: abs, files: map[string][]byte{}}
	schemaDir := path.Join("cue.mod/pkg", schema.ImportPath)
	var total int64
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if p != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			// CUE ignores these; so does the copy.
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return &Error{File: p, Line: 1, Col: 1, Msg: "a site may not contain symlinks: CUE reads only regular files of the site's own tree"}
		}
		if d.IsDir() {
			// CUE merges cue.mod/gen, usr and pkg: a site's own files for
			// the schema's import path would join the schema (and could
			// open its closed definitions).
			for _, local := range []string{"gen", "usr", "pkg"} {
				if p == path.Join("cue.mod", local, schema.ImportPath) {
					return fs.SkipDir
				}
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(name, ".cue") || p == agentFile {
			return nil
		}
		if len(s.files) >= maxSiteFiles {
			return fmt.Errorf("more than %d CUE files", maxSiteFiles)
		}
		b, err := readCapped(root, p, maxSiteBytes-total)
		if err != nil {
			return err
		}
		total += int64(len(b))
		s.files[p] = b
		return nil
	})
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, Errors{*e}
		}
		return nil, fmt.Errorf("loader: read the site %s: %w", abs, err)
	}
	err = fs.WalkDir(schema.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(schema.Files, p)
		if err != nil {
			return err
		}
		s.files[path.Join(schemaDir, p)] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loader: read embedded schema: %w", err)
	}
	if s.pkg, err = s.sitePackage(); err != nil {
		return nil, err
	}
	return s, nil
}

// readCapped reads a regular file beneath root, refusing more than limit
// bytes.
func readCapped(root *os.Root, p string, limit int64) ([]byte, error) {
	f, err := root.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: the site's CUE files exceed %d MiB", p, maxSiteBytes>>20)
	}
	return b, nil
}

// sitePackage finds the package name of the site's root files (all must
// share it; `cue` itself enforces that when loading).
func (s *siteFS) sitePackage() (string, error) {
	var names []string
	for p := range s.files {
		if !strings.Contains(p, "/") {
			names = append(names, p)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		if pkg := packageClause(s.files[n]); pkg != "" {
			return pkg, nil
		}
	}
	return "", fmt.Errorf("loader: %s: no .cue file with a package clause at the site's root", s.abs)
}

// packageClause reads a CUE file's package clause ("" when it has none).
func packageClause(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "package" {
			return f[1]
		}
	}
	return ""
}

// load parses the package at dir ("." or "./policies") of the site with
// the given agent file ("" for none) and checks what it may reach.
func (s *siteFS) load(dir, agentSrc string) (*build.Instance, error) {
	overlay := make(map[string]load.Source, len(s.files)+1)
	for p, b := range s.files {
		overlay[path.Join(virtualRoot, p)] = load.FromBytes(b)
	}
	if agentSrc != "" {
		overlay[path.Join(virtualRoot, agentFile)] = load.FromString(agentSrc)
	}
	insts := load.Instances([]string{dir}, &load.Config{
		Dir:        virtualRoot,
		ModuleRoot: virtualRoot,
		Overlay:    overlay,
		Package:    s.pkg,
		Env:        []string{"CUE_REGISTRY=none"}, // never reach a registry from a gateway
	})
	if len(insts) != 1 {
		return nil, fmt.Errorf("loader: %s: expected one CUE package in %s, found %d", s.abs, dir, len(insts))
	}
	if err := insts[0].Err; err != nil {
		return nil, convert(s.abs, err)
	}
	if errs := s.checkReach(insts[0]); len(errs) > 0 {
		return nil, errs.sorted()
	}
	return insts[0], nil
}

// checkReach refuses what could reach past the site's own CUE: @extern
// (file embedding and other injections) and imports of anything but the
// standard library (tool/* excluded), the schema and the site's own
// module. The in-memory copy already makes the host's files unreachable;
// these give a positioned error instead of a confusing one.
func (s *siteFS) checkReach(inst *build.Instance) Errors {
	var errs Errors
	mod := inst.Module
	if i := strings.LastIndex(mod, "@"); i >= 0 {
		mod = mod[:i]
	}
	seen := map[*build.Instance]bool{}
	var walk func(in *build.Instance)
	walk = func(in *build.Instance) {
		if seen[in] {
			return
		}
		seen[in] = true
		for _, f := range in.Files {
			for _, d := range f.Decls {
				if a, ok := d.(*ast.Attribute); ok {
					if k, _ := a.Split(); k == "extern" || k == "embed" {
						e := Error{Msg: fmt.Sprintf("@%s is not allowed in a site: a site holds CUE only, and CUE reads nothing else", k)}
						e.setPos(s.abs, a.Pos())
						errs = append(errs, e)
					}
				}
			}
			for im := range f.ImportSpecs() {
				p := strings.Trim(im.Path.Value, `"`)
				if allowedImport(p, mod) {
					continue
				}
				e := Error{Msg: fmt.Sprintf("import %q is not allowed: a site imports only the CUE standard library, %q and its own module's packages", p, schema.ImportPath)}
				e.setPos(s.abs, im.Pos())
				errs = append(errs, e)
			}
		}
		for _, im := range in.Imports {
			walk(im)
		}
	}
	walk(inst)
	return errs
}

// allowedImport: the standard library (a first path element without a
// dot), except the tool/* packages that only `cue cmd` runs; the schema;
// the site's own module.
func allowedImport(p, module string) bool {
	p, _, _ = strings.Cut(p, ":")
	first, _, _ := strings.Cut(p, "/")
	switch {
	case p == schema.ImportPath:
		return true
	case module != "" && (p == module || strings.HasPrefix(p, module+"/")):
		return true
	case first == "tool":
		return false
	default:
		return !strings.Contains(first, ".")
	}
}

// policyFiles are the site's policy files (policies/*.cue), sorted.
func (s *siteFS) policyFiles() []string {
	var out []string
	for p := range s.files {
		if dir, name := path.Split(p); dir == PoliciesDir+"/" && strings.HasSuffix(name, ".cue") {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
