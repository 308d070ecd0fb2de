package gitrepo

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
)

// readFS is the filesystem under a repository opened only to be read
// (the fleet view): reads go straight to the OS, with paths kept inside the
// repository lexically. go-billy's bound filesystem resolves every path
// component through lstat to stop symlinks escaping, which made each loose
// object read cost several system calls; a repository read by gitgw is not
// one an attacker writes into: its files are named by go-git (hashes,
// ref names it validated) in the root-owned state dir. What a fetched tree
// holds is another matter, and is checked where a tree is read
// (walkTree). Anything but a read goes to the bound filesystem.
type readFS struct {
	billy.Filesystem
	root string
}

func newReadFS(root string) billy.Filesystem {
	return readFS{Filesystem: osfs.New(root, osfs.WithBoundOS()), root: filepath.Clean(root)}
}

func (f readFS) abs(name string) string {
	if name == f.root || strings.HasPrefix(name, f.root+string(filepath.Separator)) {
		name = name[len(f.root):]
	}
	return filepath.Join(f.root, filepath.Clean(string(filepath.Separator)+name))
}

func (f readFS) Open(name string) (billy.File, error) {
	return f.OpenFile(name, os.O_RDONLY, 0)
}

func (f readFS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	if flag != os.O_RDONLY {
		return f.Filesystem.OpenFile(name, flag, perm)
	}
	file, err := os.Open(f.abs(name))
	if err != nil {
		return nil, err
	}
	return roFile{file}, nil
}

func (f readFS) Stat(name string) (os.FileInfo, error) { return os.Stat(f.abs(name)) }

func (f readFS) Lstat(name string) (os.FileInfo, error) { return os.Lstat(f.abs(name)) }

// roFile is an *os.File as a billy.File; locks are not needed to read.
type roFile struct{ *os.File }

func (roFile) Lock() error   { return nil }
func (roFile) Unlock() error { return nil }
