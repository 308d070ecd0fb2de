package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// ErrCannotStart matches the errors of CheckStart: the agent, as started,
// can never apply anything, and retrying will not change that.
var ErrCannotStart = errors.New("the agent cannot work as started")

// CheckStart is what an agent checks once, before it builds its drivers
// (before it touches the node's network or systemd): that the site's
// current revision has a site where --path says (a repository whose site
// is elsewhere) and declares this node. An agent started under a name the
// site does not know would otherwise retry forever, rejecting every
// revision, while the unit looks healthy; it exits instead, saying what to
// do. The credentials of the source are checked earlier still, when it is
// opened.
//
// Only what no retry can fix stops the start: a source that cannot be
// reached (network, DNS, a refused connection), a commit refused by the
// source, or an invalid site (fixed by the next push) return nil, and the
// agent's loop retries with backoff as usual.
func CheckStart(ctx context.Context, src Source, node string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rev, err := src.Sync(ctx)
	if errors.Is(err, gitrepo.ErrNoSite) {
		return fmt.Errorf("%w: %s: %w", ErrCannotStart, src.Describe(), err)
	}
	if err != nil || rev.Refused != nil || rev.Dir == "" {
		log.Debug("start-up check skipped: no revision to check yet", "source", src.Describe(), "err", err)
		return nil
	}
	_, _, err = loader.Load(ctx, rev.Dir, node)
	var un *loader.UnknownNodeError
	if !errors.As(err, &un) {
		return nil
	}
	return fmt.Errorf("%w: node %q is not declared in the site (%s, commit %s; its nodes: %s): "+
		"start the agent with --node set to this host's name in the site, or add %q to the site's nodes",
		ErrCannotStart, node, src.Describe(), rev.Commit[:min(len(rev.Commit), 12)], strings.Join(un.Nodes, ", "), node)
}
