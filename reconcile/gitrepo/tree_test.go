package gitrepo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/memory"
)

// rawEntry is one entry of a tree object written as given: any name, any
// order, duplicates included (what a crafted push can hold).
type rawEntry struct {
	mode filemode.FileMode
	name string
	hash plumbing.Hash
}

func storeObject(t testing.TB, s storer.EncodedObjectStorer, typ plumbing.ObjectType, content []byte) plumbing.Hash {
	t.Helper()
	obj := s.NewEncodedObject()
	obj.SetType(typ)
	w, err := obj.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func storeTree(t testing.TB, s storer.EncodedObjectStorer, entries ...rawEntry) plumbing.Hash {
	t.Helper()
	var raw bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&raw, "%o %s\x00", uint32(e.mode), e.name)
		raw.Write(e.hash[:])
	}
	return storeObject(t, s, plumbing.TreeObject, raw.Bytes())
}

// export writes the tree h of s to dst, as a checkout does.
func export(s storer.EncodedObjectStorer, h plumbing.Hash, dst string, lim TreeLimits) error {
	tree, err := object.GetTree(s, h)
	if err != nil {
		return err
	}
	return exportTree(s, tree, dst, lim)
}

// sandbox is a directory four levels below a fresh test directory: an
// export to sandbox/trees/out that climbed up to four levels would still
// land where outside lists it.
type sandbox struct{ top, dst string }

func newSandbox(t testing.TB, dir string) sandbox {
	top := filepath.Join(dir, "top")
	return sandbox{top: top, dst: filepath.Join(top, "a", "b", "c", "trees", "out")}
}

// outside lists every path under the sandbox's top that is not the
// export's own directory, its parents or beneath it, and every symbolic
// link anywhere.
func (sb sandbox) outside(t testing.TB) []string {
	t.Helper()
	var bad []string
	err := filepath.WalkDir(sb.top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == sb.top {
				return nil
			}
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			bad = append(bad, p+" (symlink)")
		case p == sb.dst || strings.HasPrefix(p, sb.dst+string(filepath.Separator)):
		case strings.HasPrefix(sb.dst, p+string(filepath.Separator)) && d.IsDir():
		default:
			bad = append(bad, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bad
}

func TestExportTreeWritesBeneathItsRoot(t *testing.T) {
	s := memory.NewStorage()
	cue := storeObject(t, s, plumbing.BlobObject, []byte("a: 1\n"))
	run := storeObject(t, s, plumbing.BlobObject, []byte("#!/bin/sh\n"))
	mod := storeTree(t, s, rawEntry{filemode.Regular, "module.cue", cue})
	root := storeTree(t, s,
		rawEntry{filemode.Dir, "cue.mod", mod},
		rawEntry{filemode.Executable, "run.sh", run},
		rawEntry{filemode.Regular, "site.cue", cue},
		rawEntry{filemode.Submodule, "vendor", cue})
	sb := newSandbox(t, t.TempDir())
	if err := export(s, root, sb.dst, TreeLimits{}); err != nil {
		t.Fatal(err)
	}
	if bad := sb.outside(t); len(bad) > 0 {
		t.Errorf("written outside the tree: %q", bad)
	}
	for name, want := range map[string]string{"site.cue": "a: 1\n", "cue.mod/module.cue": "a: 1\n", "run.sh": "#!/bin/sh\n"} {
		if got := readFile(t, sb.dst, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if st, err := os.Stat(filepath.Join(sb.dst, "run.sh")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("run.sh: %v %v, want mode 0755", st.Mode(), err)
	}
	if _, err := os.Lstat(filepath.Join(sb.dst, "vendor")); err == nil {
		t.Errorf("a submodule was exported")
	}
}

// TestExportTreeRefuses: a crafted tree is refused as a whole, naming the
// entry and why, before anything of it is written.
func TestExportTreeRefuses(t *testing.T) {
	s := memory.NewStorage()
	site := storeObject(t, s, plumbing.BlobObject, []byte("a: 1\n"))
	link := func(target string) plumbing.Hash { return storeObject(t, s, plumbing.BlobObject, []byte(target)) }
	mib := storeObject(t, s, plumbing.BlobObject, bytes.Repeat([]byte("# gitgw\n"), 1<<17))
	var many []rawEntry
	for i := 0; i < 300; i++ {
		many = append(many, rawEntry{filemode.Regular, fmt.Sprintf("f%03d.txt", i), mib})
	}
	// x/y/z/w/l1 -> ../../../.. and x/y/z/w/l2 -> l1/../../../..: each
	// inside the tree on paper, together four levels above it; then a
	// file written through them by a name holding a '/'.
	chain := storeTree(t, s,
		rawEntry{filemode.Symlink, "l1", link("../../../..")},
		rawEntry{filemode.Symlink, "l2", link("l1/../../../..")},
		rawEntry{filemode.Regular, "l2/pwned.conf", site})
	for _, name := range []string{"w", "z", "y"} {
		chain = storeTree(t, s, rawEntry{filemode.Dir, name, chain})
	}
	for _, tc := range []struct {
		name    string
		entries []rawEntry
		lim     TreeLimits
		path    string
		why     string
	}{
		{"slash in a name", []rawEntry{{filemode.Regular, "etc/passwd", site}}, TreeLimits{}, "etc/passwd", "name holds a '/'"},
		{"dot dot", []rawEntry{{filemode.Regular, "..", site}}, TreeLimits{}, "..", `name is ".."`},
		{"dot", []rawEntry{{filemode.Dir, ".", storeTree(t, s, rawEntry{filemode.Regular, "a.cue", site})}}, TreeLimits{}, ".", `name is "."`},
		{".git", []rawEntry{{filemode.Dir, ".GIT", storeTree(t, s, rawEntry{filemode.Regular, "config", site})}}, TreeLimits{}, ".GIT", `name is ".GIT"`},
		{"twice", []rawEntry{{filemode.Regular, "site.cue", site}, {filemode.Regular, "site.cue", link("b: 2\n")}}, TreeLimits{}, "site.cue", "named twice"},
		{"file and directory of one name", []rawEntry{{filemode.Regular, "s", site}, {filemode.Dir, "s", storeTree(t, s, rawEntry{filemode.Regular, "a.cue", site})}}, TreeLimits{}, "s", "named twice"},
		{"symlink inside", []rawEntry{{filemode.Regular, "site.cue", site}, {filemode.Symlink, "alias.cue", link("site.cue")}}, TreeLimits{}, "alias.cue", "symbolic links are refused"},
		{"two-symlink chain and a '/' name", []rawEntry{{filemode.Regular, "site.cue", site}, {filemode.Dir, "x", chain}}, TreeLimits{}, "x/y/z/w/l1", "symbolic links are refused"},
		{"too many entries", many[:4], TreeLimits{MaxEntries: 3}, "", "more than 3 entries"},
		{"one 1 MiB blob 300 times", many, TreeLimits{}, "f064.txt", "more than 67108864 bytes (64 MiB; limit --max-tree-bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := storeTree(t, s, tc.entries...)
			sb := newSandbox(t, t.TempDir())
			err := export(s, root, sb.dst, tc.lim)
			var te *TreeError
			if !errors.As(err, &te) || !errors.Is(err, ErrTreeRefused) {
				t.Fatalf("export = %v, want a *TreeError", err)
			}
			if te.Path != tc.path || !strings.Contains(te.Reason, tc.why) {
				t.Errorf("refused %q: %q, want %q: %q", te.Path, te.Reason, tc.path, tc.why)
			}
			if _, err := os.Lstat(filepath.Dir(sb.dst)); err == nil {
				t.Errorf("a refused tree created %s", filepath.Dir(sb.dst))
			}
			if bad := sb.outside(t); len(bad) > 0 {
				t.Errorf("written outside the tree: %q", bad)
			}
			if tc.lim != (TreeLimits{}) {
				return
			}
			tree, err := object.GetTree(s, root)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := readFiles(s, tree); !errors.Is(err, ErrTreeRefused) {
				t.Errorf("readFiles = %v, want the tree refused", err)
			}
		})
	}
}

// FuzzExportTree builds a tree from a script of entries — any bytes in a
// name ('/', "..", NUL …), symbolic links with any target, directories,
// duplicates, in any order — exports it, and checks that nothing is ever
// written outside the export's directory, that no symbolic link is ever
// created, and that a refused tree leaves nothing at all.
//
// Script: one entry a line, "f NAME" (file), "x NAME" (executable), "l
// NAME\tTARGET" (symlink), "m NAME" (submodule), "d NAME" (directory,
// until "u").
func FuzzExportTree(f *testing.F) {
	for _, seed := range []string{
		"f site.cue\nd cue.mod\nf module.cue\nu\nx run.sh",
		"d x\nd y\nd z\nd w\nl l1\t../../../..\nl l2\tl1/../../../..\nf l2/pwned.conf",
		"l a\t/etc\nf a/passwd",
		"f ../../../../escape",
		"f ..\nf .\nf .git",
		"d a\nf b\nu\nf a/b",
		"f a\x00b",
		"f dup\nf dup",
		"d .\nf x",
		"d a/../..\nf x",
		"f \nm sub",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		s := memory.NewStorage()
		type level struct {
			name    string
			entries []rawEntry
		}
		stack := []level{{}}
		closeDir := func() {
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			h := storeTree(t, s, top.entries...)
			parent := &stack[len(stack)-1]
			parent.entries = append(parent.entries, rawEntry{filemode.Dir, top.name, h})
		}
		for _, line := range bytes.Split(script, []byte("\n")) {
			if len(line) < 2 {
				continue
			}
			op, arg := line[0], string(line[2:])
			add := func(e rawEntry) { stack[len(stack)-1].entries = append(stack[len(stack)-1].entries, e) }
			blob := func(b string) plumbing.Hash { return storeObject(t, s, plumbing.BlobObject, []byte(b)) }
			switch op {
			case 'f':
				add(rawEntry{filemode.Regular, arg, blob(arg)})
			case 'x':
				add(rawEntry{filemode.Executable, arg, blob(arg)})
			case 'l':
				name, target, _ := strings.Cut(arg, "\t")
				add(rawEntry{filemode.Symlink, name, blob(target)})
			case 'm':
				add(rawEntry{filemode.Submodule, arg, blob(arg)})
			case 'd':
				if len(stack) < 32 {
					stack = append(stack, level{name: arg})
				}
			case 'u':
				if len(stack) > 1 {
					closeDir()
				}
			}
		}
		for len(stack) > 1 {
			closeDir()
		}
		root := storeTree(t, s, stack[0].entries...)
		sb := newSandbox(t, t.TempDir())
		err := export(s, root, sb.dst, TreeLimits{MaxEntries: 64, MaxBytes: 4096})
		if bad := sb.outside(t); len(bad) > 0 {
			t.Fatalf("export (%v) wrote outside the tree: %q", err, bad)
		}
		if err != nil {
			if _, statErr := os.Lstat(filepath.Dir(sb.dst)); statErr == nil {
				entries, _ := os.ReadDir(filepath.Dir(sb.dst))
				if len(entries) > 0 {
					t.Fatalf("a refused tree (%v) left %v", err, entries)
				}
			}
		}
	})
}

// BenchmarkExportTree: one checkout of a large site (20 directories of 20
// files of 4 KiB), checked as a whole and written through an os.Root.
func BenchmarkExportTree(b *testing.B) {
	s := memory.NewStorage()
	var dirs []rawEntry
	for d := 0; d < 20; d++ {
		var files []rawEntry
		for f := 0; f < 20; f++ {
			h := storeObject(b, s, plumbing.BlobObject, bytes.Repeat([]byte(fmt.Sprintf("x%d: %d\n", d, f)), 512))
			files = append(files, rawEntry{filemode.Regular, fmt.Sprintf("f%02d.cue", f), h})
		}
		dirs = append(dirs, rawEntry{filemode.Dir, fmt.Sprintf("d%02d", d), storeTree(b, s, files...)})
	}
	root := storeTree(b, s, dirs...)
	dir := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := export(s, root, filepath.Join(dir, fmt.Sprint(i)), TreeLimits{}); err != nil {
			b.Fatal(err)
		}
	}
}
