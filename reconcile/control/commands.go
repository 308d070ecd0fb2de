package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/gitgw/gitgw/reconcile/drift"
)

// The client commands (gitgw status, reconcile, suspend, resume, override):
// each asks the agent once and writes what the operator reads.

// ErrPassFailed is returned by WriteReconcile when the pass was rejected
// or failed: its summary is printed, and the command exits 1.
var ErrPassFailed = errors.New("the pass was rejected or failed")

// WriteStatus writes the agent's status: as text, or as the JSON the agent
// sent (versioned: .version).
func (c *Client) WriteStatus(ctx context.Context, w io.Writer, asJSON bool) error {
	if asJSON {
		b, err := c.StatusJSON(ctx)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	return RenderText(w, st)
}

// WriteReconcile asks for a pass and writes its summary (with wait, the
// pass's result); ErrPassFailed when it was rejected or failed.
func (c *Client) WriteReconcile(ctx context.Context, w io.Writer, wait bool) error {
	r, err := c.Reconcile(ctx, wait)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, r.Summary)
	switch r.Outcome {
	case drift.Rejected, drift.Failed:
		return ErrPassFailed
	}
	return nil
}

// WriteSuspend suspends the agent and says what that means.
func (c *Client) WriteSuspend(ctx context.Context, w io.Writer) error {
	if _, err := c.Suspend(ctx); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "suspended: passes plan and report; nothing is applied until `gitgw resume`")
	return err
}

// WriteResume resumes the agent and says what that means.
func (c *Client) WriteResume(ctx context.Context, w io.Writer) error {
	if _, err := c.Resume(ctx); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "resumed: applying again; overrides cleared")
	return err
}

// ParseOverride reads an override's command line: the target, and for
// ActionWeight the weight after it.
func ParseOverride(action string, args []string) (OverrideRequest, error) {
	req := OverrideRequest{Action: action, Target: args[0]}
	if action == ActionWeight {
		w, err := strconv.Atoi(args[1])
		if err != nil {
			return req, fmt.Errorf("weight %q: %w", args[1], err)
		}
		req.Weight = w
	}
	return req, nil
}

// WriteOverride sets an override and writes it.
func (c *Client) WriteOverride(ctx context.Context, w io.Writer, req OverrideRequest) error {
	o, err := c.Override(ctx, req)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "override %s: in force until resume or a new commit\n", o)
	return err
}

// WriteOverrides lists the overrides in force, one a line.
func (c *Client) WriteOverrides(ctx context.Context, w io.Writer) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	for _, o := range st.Overrides {
		fmt.Fprintf(w, "%s\t(set on %s at %s)\n", o, o.Commit, o.Since.Format(time.RFC3339))
	}
	return nil
}

// WriteClear clears the overrides of target ("" for all) and writes each;
// clearing none is an error.
func (c *Client) WriteClear(ctx context.Context, w io.Writer, target string) error {
	gone, err := c.Clear(ctx, target)
	if err != nil {
		return err
	}
	if len(gone) == 0 {
		return errors.New("no override to clear")
	}
	for _, o := range gone {
		fmt.Fprintf(w, "cleared %s\n", o)
	}
	return nil
}
