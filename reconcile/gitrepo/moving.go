package gitrepo

import (
	"context"
	"strings"

	git "github.com/go-git/go-git/v5"
)

// fetchAttempts bounds how often a fetch asks again when a ref moved under
// it (fetchMoving).
const fetchAttempts = 3

// fetchMoving fetches, asking again when the server answers "not our
// ref". Over smart HTTP a fetch is two requests: the ref advertisement,
// then the wants. In a status repository refs move all the time (each node
// refreshes its alive ref every minute: at 10,000 nodes, more than 150
// moves a second), and a ref that moved between the two requests makes
// git-upload-pack refuse the want it no longer advertises. Asking again
// reads a fresh advertisement; any other failure is returned at once.
func fetchMoving(ctx context.Context, remote *git.Remote, opts *git.FetchOptions) error {
	var err error
	for range fetchAttempts {
		err = remote.FetchContext(ctx, opts)
		if err == nil || !strings.Contains(err.Error(), "not our ref") || ctx.Err() != nil {
			return err
		}
	}
	return err
}
