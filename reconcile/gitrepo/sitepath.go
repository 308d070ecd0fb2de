package gitrepo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// moduleFile marks a site's root: CUE's module file.
const moduleFile = "cue.mod/module.cue"

// CleanSitePath checks and cleans the directory of the site within the
// repository (--path): slash-separated, relative, never above the
// repository's root. "" and "." both mean the root and come back as "".
// The path is untrusted input (a flag, an environment file): what it names
// is also resolved beneath the exported tree only (siteDir).
func CleanSitePath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if strings.ContainsRune(p, 0) || strings.Contains(p, `\`) {
		return "", fmt.Errorf("--path %q: not a directory name of the repository", p)
	}
	if path.IsAbs(p) {
		return "", fmt.Errorf("--path %q: give the site's directory relative to the repository's root, not an absolute path", p)
	}
	c := path.Clean(p)
	if c == "." {
		return "", nil
	}
	if !filepath.IsLocal(filepath.FromSlash(c)) {
		return "", fmt.Errorf("--path %q: the site's directory must be inside the repository (no ..)", p)
	}
	return c, nil
}

// siteDir is where the site of an exported tree is: tree itself, or the
// directory rel (cleaned by CleanSitePath) beneath it, resolved through an
// os.Root so that nothing can lead above the tree. A tree whose site
// directory holds no cue.mod/module.cue is refused with a *TreeError that
// names the path in the repository (never the local copy's) and the
// directories that do hold a site, so the operator knows which --path to
// give.
func siteDir(tree, rel string) (string, error) {
	root, err := os.OpenRoot(tree)
	if err != nil {
		return "", err
	}
	defer root.Close()
	name := "."
	if rel != "" {
		name = filepath.FromSlash(rel)
	}
	fi, err := root.Lstat(filepath.Join(name, filepath.FromSlash(moduleFile)))
	if err == nil && fi.Mode().IsRegular() {
		return filepath.Join(tree, name), nil
	}
	where := "the repository's root"
	if rel != "" {
		where = fmt.Sprintf("%q (--path)", rel)
		if st, err := root.Stat(name); err != nil || !st.IsDir() {
			where = fmt.Sprintf("%q (--path), which is not a directory of this commit,", rel)
		}
	}
	reason := fmt.Sprintf("no site at %s: %s missing", where, moduleFile)
	if found := findSites(root); len(found) > 0 {
		reason += fmt.Sprintf("; the site is in a subdirectory: give it with --path %s", strings.Join(found, " or --path "))
	} else {
		reason += "; give the site's directory (the one holding cue.mod/) with --path DIR"
	}
	return "", &TreeError{Reason: reason, noSite: true}
}

// findSites lists, shallowest first, the directories of the tree that
// hold a site (at most three).
func findSites(root *os.Root) []string {
	var found []string
	errStop := errors.New("enough")
	_ = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if d.Name() == "cue.mod" || (p != "." && strings.HasPrefix(d.Name(), ".")) {
			return fs.SkipDir
		}
		if p == "." {
			return nil
		}
		if fi, err := root.Lstat(filepath.Join(filepath.FromSlash(p), filepath.FromSlash(moduleFile))); err == nil && fi.Mode().IsRegular() {
			found = append(found, p)
			if len(found) == 3 {
				return errStop
			}
			return fs.SkipDir
		}
		return nil
	})
	sort.Slice(found, func(i, j int) bool {
		if a, b := strings.Count(found[i], "/"), strings.Count(found[j], "/"); a != b {
			return a < b
		}
		return found[i] < found[j]
	})
	return found
}
