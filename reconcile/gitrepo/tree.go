package gitrepo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// fileEntry is one file of a tree: its mode and blob.
type fileEntry struct {
	mode filemode.FileMode
	hash plumbing.Hash
}

// checkPath refuses paths that could escape a directory or touch .git.
func checkPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") {
		return fmt.Errorf("invalid path %q", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." || strings.EqualFold(c, ".git") || strings.ContainsRune(c, 0) {
			return fmt.Errorf("invalid path %q", p)
		}
	}
	return nil
}

// writeBlob stores content as a blob.
func writeBlob(s storer.EncodedObjectStorer, content []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(content)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(content); err != nil {
		_ = w.Close()
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// flatten lists the files of a tree by slash-separated path.
func flatten(t *object.Tree) (map[string]fileEntry, error) {
	out := map[string]fileEntry{}
	w := object.NewTreeWalker(t, true, nil)
	defer w.Close()
	for {
		name, e, err := w.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if e.Mode == filemode.Dir {
			continue
		}
		out[name] = fileEntry{mode: e.Mode, hash: e.Hash}
	}
}

// buildTree writes the tree objects for files (path → entry) and returns
// the root tree's hash. Git's canonical entry order makes the hash depend
// on the content only.
func buildTree(s storer.EncodedObjectStorer, files map[string]fileEntry) (plumbing.Hash, error) {
	type sub struct {
		files map[string]fileEntry
	}
	var entries []object.TreeEntry
	dirs := map[string]*sub{}
	for p, e := range files {
		head, rest, nested := strings.Cut(p, "/")
		if !nested {
			entries = append(entries, object.TreeEntry{Name: head, Mode: e.mode, Hash: e.hash})
			continue
		}
		d := dirs[head]
		if d == nil {
			d = &sub{files: map[string]fileEntry{}}
			dirs[head] = d
		}
		d.files[rest] = e
	}
	for name, d := range dirs {
		h, err := buildTree(s, d.files)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h})
	}
	// Git orders entries by name, a directory as if its name ended in '/'.
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	for i := 1; i < len(entries); i++ {
		if entries[i].Name == entries[i-1].Name {
			return plumbing.ZeroHash, fmt.Errorf("path %q is both a file and a directory", entries[i].Name)
		}
	}
	tree := &object.Tree{Entries: entries}
	obj := s.NewEncodedObject()
	if err := tree.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// treeFromFiles stores files (path → content) over base (path → entry, may
// be nil) and returns the root tree. A nil content deletes the path.
func treeFromFiles(s storer.EncodedObjectStorer, base map[string]fileEntry, files map[string][]byte) (plumbing.Hash, error) {
	all := make(map[string]fileEntry, len(base)+len(files))
	for p, e := range base {
		all[p] = e
	}
	for p, content := range files {
		if err := checkPath(p); err != nil {
			return plumbing.ZeroHash, err
		}
		if content == nil {
			delete(all, p)
			continue
		}
		h, err := writeBlob(s, content)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("store %s: %w", p, err)
		}
		mode := filemode.Regular
		if old, ok := base[p]; ok && old.mode == filemode.Executable {
			mode = filemode.Executable
		}
		all[p] = fileEntry{mode: mode, hash: h}
	}
	return buildTree(s, all)
}

// readFiles returns the content of every regular file of t by path.
func readFiles(t *object.Tree) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := t.Files().ForEach(func(f *object.File) error {
		if !f.Mode.IsFile() {
			return nil
		}
		r, err := f.Reader()
		if err != nil {
			return fmt.Errorf("read %s: %w", f.Name, err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("read %s: %w", f.Name, err)
		}
		out[f.Name] = b
		return nil
	})
	return out, err
}

// exportTree writes the files of t into dir, which must not exist yet: it
// is built beside dir and renamed into place, so it appears complete or not
// at all. Symbolic links are kept when they point inside the tree.
func exportTree(t *object.Tree, dir string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".export-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	err = t.Files().ForEach(func(f *object.File) error {
		if err := checkPath(f.Name); err != nil {
			return err
		}
		dst := filepath.Join(tmp, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		switch f.Mode {
		case filemode.Symlink:
			target, err := f.Contents()
			if err != nil {
				return err
			}
			resolved := path.Clean(path.Join(path.Dir(f.Name), target))
			if path.IsAbs(target) || resolved == ".." || strings.HasPrefix(resolved, "../") {
				return fmt.Errorf("symlink %s points outside the tree (%s)", f.Name, target)
			}
			return os.Symlink(target, dst)
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
			perm := os.FileMode(0o644)
			if f.Mode == filemode.Executable {
				perm = 0o755
			}
			r, err := f.Reader()
			if err != nil {
				return err
			}
			defer r.Close()
			out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, r); err != nil {
				_ = out.Close()
				return err
			}
			return out.Close()
		default:
			return nil // submodules: nothing to export
		}
	})
	if err != nil {
		return fmt.Errorf("export tree %s: %w", t.Hash, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(dir); statErr == nil {
			return nil // exported already
		}
		return fmt.Errorf("export tree %s: %w", t.Hash, err)
	}
	return nil
}
