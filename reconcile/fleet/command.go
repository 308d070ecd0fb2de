package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// Command is what gitgw fleet is told: which status branches to read, and
// whether to print them once (text or JSON) or serve them as a page.
type Command struct {
	Read Options
	// Clone is the local clone Read.URL names, when the site was given as
	// a directory: a hint then says how to fetch its status branches.
	Clone string
	JSON  bool
	// Serve is the page's address ("" prints once); Refresh how often it
	// re-reads the status branches.
	Serve   string
	Refresh time.Duration
	// NoCache reads a remote into memory each time, instead of through
	// Read.CacheDir (default DefaultCacheDir); a page then keeps a
	// temporary cache, removed when it stops.
	NoCache bool
	Logger  *slog.Logger
	Stdout  io.Writer
}

// Run prints the fleet view once, or serves it until ctx is done.
func (c *Command) Run(ctx context.Context) error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Read.Logger == nil {
		c.Read.Logger = c.Logger
	}
	switch {
	case gitrepo.IsLocalURL(c.Read.URL):
		c.Read.CacheDir = "" // read in place
	case c.NoCache:
		c.Read.CacheDir = ""
	case c.Read.CacheDir == "":
		dir, err := DefaultCacheDir(c.Read.URL)
		if err != nil {
			c.Logger.Warn("reading without a cache", "err", err)
		}
		c.Read.CacheDir = dir
	}
	if c.Serve != "" {
		if c.Refresh < time.Second {
			return fmt.Errorf("--refresh %s: give at least 1s (each read fetches every status branch)", c.Refresh)
		}
		ln, err := net.Listen("tcp", c.Serve)
		if err != nil {
			return fmt.Errorf("--serve: %w", err)
		}
		c.Logger.Info("fleet page up", "url", "http://"+ln.Addr().String()+"/", "refresh", c.Refresh.String())
		return NewPage(PageOptions{Read: c.Read, Listen: ln.Addr().String(), Refresh: c.Refresh, Logger: c.Logger}).Serve(ctx, ln)
	}
	fl, err := Read(ctx, c.Read)
	if err != nil {
		return err
	}
	out := c.Stdout
	if c.JSON {
		return drift.WriteFleetJSON(out, fl)
	}
	if len(fl.Nodes) == 0 {
		fmt.Fprintf(out, "No status branches (%s*) in %s.\n", c.Read.Prefix, c.Read.URL)
		if c.Clone != "" {
			// A clone keeps other branches as remote-tracking refs, which
			// are not read here.
			fmt.Fprintf(out, "In a clone, fetch them as branches first:\n  git -C %s fetch origin '+refs/heads/%s*:refs/heads/%s*'\nor read the repository itself with --repo URL.\n",
				c.Clone, c.Read.Prefix, c.Read.Prefix)
		}
		return nil
	}
	return drift.WriteFleetText(out, fl, time.Now())
}
