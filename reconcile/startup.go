package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
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
// opened. With hostAddrs set, the node's addresses in the site must be on
// this host unless another node's are not either (CheckHostAddresses): an
// agent started under its peer's name refuses to start.
//
// Only what no retry can fix stops the start: a source that cannot be
// reached (network, DNS, a refused connection), a commit refused by the
// source, or an invalid site (fixed by the next push) return nil, and the
// agent's loop retries with backoff as usual.
func CheckStart(ctx context.Context, src Source, node string, hostAddrs func() (map[string][]netip.Prefix, error), log *slog.Logger) error {
	return CheckStartWith(ctx, src, node, nil, loader.Options{}, hostAddrs, log)
}

// CheckStartWith is CheckStart evaluating the site with load and o: the
// agent gives the Runner's own (HandOn), so that the head is evaluated
// once, here, and its first pass reads this evaluation.
func CheckStartWith(ctx context.Context, src Source, node string, load LoadFunc, o loader.Options,
	hostAddrs func() (map[string][]netip.Prefix, error), log *slog.Logger) error {
	if load == nil {
		load = loader.LoadWith
	}
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
	site, view, err := load(ctx, rev.Dir, node, o)
	var un *loader.UnknownNodeError
	if err == nil && hostAddrs != nil {
		return checkPlace(ctx, rev.Dir, site, view, hostAddrs, log)
	}
	if !errors.As(err, &un) {
		return nil
	}
	return fmt.Errorf("%w: node %q is not declared in the site (%s, commit %s; its nodes: %s): "+
		"start the agent with --node set to this host's name in the site, or add %q to the site's nodes",
		ErrCannotStart, node, src.Describe(), rev.Commit[:min(len(rev.Commit), 12)], strings.Join(un.Nodes, ", "), node)
}

// checkPlace runs CheckHostAddresses. The node's view says whether one of
// its addresses is here (the common case, at no cost); only when none is
// are the other nodes' addresses read, from the whole site (evaluated
// again when the node's view was loaded alone).
func checkPlace(ctx context.Context, dir string, site *loader.Site, view *spec.Node, hostAddrs func() (map[string][]netip.Prefix, error), log *slog.Logger) error {
	host, err := hostAddrs()
	if err != nil {
		log.Warn("start-up address check skipped: this host's addresses cannot be read", "err", err)
		return nil
	}
	if !onlyElsewhere(view.Node, host) {
		return nil
	}
	whole, err := site.Whole()
	if err != nil {
		var all *loader.Site
		if all, _, err = loader.Load(ctx, dir, ""); err == nil {
			whole, err = all.Whole()
		}
	}
	if err != nil {
		log.Warn("start-up address check skipped: the site's nodes cannot be read", "err", err)
		return nil
	}
	if err := CheckHostAddresses(view.Name, whole.Nodes, host); err != nil {
		return err
	}
	// No node's address is here: a lab or a container with a view of its
	// own, or the wrong host; not refused, but said.
	log.Warn("none of this node's addresses in the site is on this host; is --node right?", "node", view.Name)
	return nil
}

// onlyElsewhere says the node declares addresses and none is on the host.
func onlyElsewhere(n spec.NodeSettings, host map[string][]netip.Prefix) bool {
	on := map[netip.Addr]bool{}
	for _, ps := range host {
		for _, p := range ps {
			on[p.Addr()] = true
		}
	}
	declared := false
	for _, ifc := range n.Interfaces {
		for _, p := range ifc.Addresses {
			declared = true
			if on[p.Addr()] {
				return false
			}
		}
	}
	return declared
}
