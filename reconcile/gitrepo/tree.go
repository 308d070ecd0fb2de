package gitrepo

import (
	"errors"
	"fmt"
	"io"
	"os"
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

// The default bounds of one commit's tree. A site is a few dozen CUE
// files; these leave two orders of magnitude of room and still stop a tree
// that names one big blob a thousand times (which costs the pusher a few
// bytes and the node the whole disk).
const (
	DefaultMaxTreeEntries = 10000
	DefaultMaxTreeBytes   = 64 << 20
)

// TreeLimits bound what one commit's tree may hold; zero fields take the
// defaults.
type TreeLimits struct {
	// MaxEntries counts files, directories and submodules, each time a
	// tree names them.
	MaxEntries int
	// MaxBytes is the sum of the sizes of the files, each time a tree
	// names them.
	MaxBytes int64
}

func (l TreeLimits) orDefault() TreeLimits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxTreeEntries
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxTreeBytes
	}
	return l
}

// ErrTreeRefused matches a *TreeError with errors.Is.
var ErrTreeRefused = errors.New("tree refused")

// ErrNoSite matches a *TreeError for a tree with no site at Options.Path
// (no cue.mod/module.cue there).
var ErrNoSite = errors.New("no site at the site's path")

// TreeError says why a commit's tree is not written: nothing of it has
// been.
type TreeError struct {
	// Path is the entry at fault ("" for the tree as a whole), slash-separated
	// from the tree's root; a name with a '/' of its own is quoted.
	Path   string
	Reason string
	// noSite: the tree holds no site where it should (Options.Site).
	noSite bool
}

func (e *TreeError) Error() string {
	if e.Path == "" {
		return "tree refused: " + e.Reason
	}
	return fmt.Sprintf("tree refused: %q: %s", e.Path, e.Reason)
}

// Is makes errors.Is(err, ErrTreeRefused) true.
func (e *TreeError) Is(target error) bool {
	return target == ErrTreeRefused || (e.noSite && target == ErrNoSite)
}

// treeItem is one entry of a checked tree, parents before children.
type treeItem struct {
	path string // slash-separated, every component checked
	mode filemode.FileMode
	hash plumbing.Hash
	size int64
}

// walkTree lists the directories and files of t, refusing — before
// anything is written or read into memory — what could reach outside the
// directory the tree is written to or fill the disk: a name that is empty,
// ".", "..", ".git", or holds '/' or NUL; a name twice in one tree; a
// symbolic link (a link, or a chain of them, each inside the tree on
// paper, can resolve above it, and a site has no use for one); an unknown
// mode; more entries or bytes than lim allows. Submodules are skipped.
func walkTree(s storer.EncodedObjectStorer, t *object.Tree, lim TreeLimits) ([]treeItem, error) {
	lim = lim.orDefault()
	w := &treeWalk{s: s, lim: lim}
	if err := w.walk("", t); err != nil {
		return nil, err
	}
	return w.items, nil
}

type treeWalk struct {
	s       storer.EncodedObjectStorer
	lim     TreeLimits
	items   []treeItem
	entries int
	bytes   int64
}

func (w *treeWalk) walk(dir string, t *object.Tree) error {
	seen := make(map[string]bool, len(t.Entries))
	for _, e := range t.Entries {
		p := e.Name
		if dir != "" {
			p = dir + "/" + e.Name
		}
		if err := checkName(e.Name); err != nil {
			return &TreeError{Path: p, Reason: err.Error()}
		}
		if seen[e.Name] {
			return &TreeError{Path: p, Reason: "named twice in one tree"}
		}
		seen[e.Name] = true
		if w.entries++; w.entries > w.lim.MaxEntries {
			return &TreeError{Reason: fmt.Sprintf("more than %d entries (files and directories; limit --max-tree-entries)", w.lim.MaxEntries)}
		}
		switch e.Mode {
		case filemode.Dir:
			sub, err := object.GetTree(w.s, e.Hash)
			if err != nil {
				return &TreeError{Path: p, Reason: fmt.Sprintf("read directory: %v", err)}
			}
			w.items = append(w.items, treeItem{path: p, mode: filemode.Dir, hash: e.Hash})
			if err := w.walk(p, sub); err != nil {
				return err
			}
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
			size, err := blobSize(w.s, e.Hash)
			if err != nil {
				return &TreeError{Path: p, Reason: fmt.Sprintf("read file: %v", err)}
			}
			if w.bytes += size; w.bytes > w.lim.MaxBytes {
				return &TreeError{Path: p, Reason: fmt.Sprintf("the tree's files add up to more than %d bytes (%d MiB; limit --max-tree-bytes)",
					w.lim.MaxBytes, w.lim.MaxBytes>>20)}
			}
			mode := filemode.Regular
			if e.Mode == filemode.Executable {
				mode = filemode.Executable
			}
			w.items = append(w.items, treeItem{path: p, mode: mode, hash: e.Hash, size: size})
		case filemode.Symlink:
			return &TreeError{Path: p, Reason: "symbolic links are refused in a site (a link can resolve outside the tree); commit the file itself"}
		case filemode.Submodule:
			// Nothing to export: the commit it names is in another repository.
		default:
			return &TreeError{Path: p, Reason: fmt.Sprintf("unsupported mode %s", e.Mode)}
		}
	}
	return nil
}

// checkName refuses a tree entry name that is not one plain path
// component. Git itself never writes such names; a crafted tree object
// can, and plain git servers accept it (receive.fsckObjects is off by
// default).
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == ".." || strings.EqualFold(name, ".git"):
		return fmt.Errorf("name is %q", name)
	case strings.ContainsRune(name, '/'):
		return errors.New("name holds a '/'")
	case strings.ContainsRune(name, 0):
		return errors.New("name holds a NUL byte")
	}
	return nil
}

// blobSize is a blob's size from its header, without reading its content.
func blobSize(s storer.EncodedObjectStorer, h plumbing.Hash) (int64, error) {
	if sz, ok := s.(interface {
		EncodedObjectSize(plumbing.Hash) (int64, error)
	}); ok {
		return sz.EncodedObjectSize(h)
	}
	o, err := s.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return 0, err
	}
	return o.Size(), nil
}

// readBlob returns the content of a blob of the size walkTree found.
func readBlob(s storer.EncodedObjectStorer, it treeItem) ([]byte, error) {
	b, err := object.GetBlob(s, it.hash)
	if err != nil {
		return nil, err
	}
	r, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, it.size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) != it.size {
		return nil, fmt.Errorf("blob %s: %d bytes, its header says %d", it.hash, len(out), it.size)
	}
	return out, nil
}

// readFiles returns the content of every regular file of t by path, within
// the default limits (the tree is held in memory).
func readFiles(s storer.EncodedObjectStorer, t *object.Tree) (map[string][]byte, error) {
	items, err := walkTree(s, t, TreeLimits{})
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, it := range items {
		if it.mode == filemode.Dir {
			continue
		}
		b, err := readBlob(s, it)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", it.path, err)
		}
		out[it.path] = b
	}
	return out, nil
}

// exportTree writes the files of t into dir, which must not exist yet. The
// tree is checked as a whole first (walkTree), so a refused tree writes
// nothing; it is then built beside dir and renamed into place, so it
// appears complete or not at all. Every file is created through an
// os.Root opened on the new directory: no name, whatever it holds, can
// land above it.
func exportTree(s storer.EncodedObjectStorer, t *object.Tree, dir string, lim TreeLimits) error {
	items, err := walkTree(s, t, lim)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".export-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, it := range items {
		if err := writeItem(s, root, it); err != nil {
			return fmt.Errorf("export %s: %w", it.path, err)
		}
	}
	if err := root.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Lstat(dir); statErr == nil {
			return nil // exported already
		}
		return err
	}
	return nil
}

// writeItem creates one directory or file beneath root.
func writeItem(s storer.EncodedObjectStorer, root *os.Root, it treeItem) error {
	name := filepath.FromSlash(it.path)
	if it.mode == filemode.Dir {
		return root.Mkdir(name, 0o755)
	}
	perm := os.FileMode(0o644)
	if it.mode == filemode.Executable {
		perm = 0o755
	}
	b, err := object.GetBlob(s, it.hash)
	if err != nil {
		return err
	}
	r, err := b.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	out, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, io.LimitReader(r, it.size))
	if err != nil {
		_ = out.Close()
		return err
	}
	if n != it.size {
		_ = out.Close()
		return fmt.Errorf("blob %s: %d bytes, its header says %d", it.hash, n, it.size)
	}
	return out.Close()
}
