package gitrepo

import (
	"fmt"

	git "github.com/go-git/go-git/v5"
)

// repackEvery is how many new commits (status) or fetches (source) a local
// repository takes before its objects are packed again. Without it a
// status branch leaves three loose object files per commit and a source one
// pack per fetch, forever.
const repackEvery = 512

// repack packs every reachable object of the repository in dir into one
// pack, deleting the loose objects and older packs. Callers must hold every
// handle on dir still and reopen them afterwards: go-git's storage caches
// the list of packs.
func repack(dir string) error {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return fmt.Errorf("gitrepo: repack %s: %w", dir, err)
	}
	if err := repo.RepackObjects(&git.RepackConfig{}); err != nil {
		return fmt.Errorf("gitrepo: repack %s: %w", dir, err)
	}
	return nil
}
