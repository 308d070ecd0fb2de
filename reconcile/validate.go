package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/internal/words"
	"github.com/gitgw/gitgw/policies"
)

// CheckSite runs the built-in guardrails over the whole site and the
// site's own policies (`gitgw validate`, and `gitgw import` on what it
// wrote): warnings are written to warn, one "warning: FILE:LINE: …" a
// line; errors are returned, positioned.
func CheckSite(ctx context.Context, site *loader.Site, warn io.Writer) (loader.Errors, error) {
	whole, err := site.Whole()
	if err != nil {
		return nil, err
	}
	bad, warns := policies.Split(policies.Check(policies.FromSite(whole)))
	for _, e := range site.Locate(PolicyErrors(warns)) {
		fmt.Fprintln(warn, "warning: "+e.Error())
	}
	errs := site.Locate(PolicyErrors(bad))
	sp, err := loader.SitePolicies(ctx, site.Dir)
	if le, ok := loader.AsErrors(err); ok {
		sp, err = le, nil
	}
	if err != nil {
		return nil, err
	}
	return append(errs, sp...), nil
}

// ErrInvalid is returned by Validate for a site with errors (printed).
var ErrInvalid = errors.New("the site is not valid")

// Validate is gitgw validate: it loads the site at src's head, runs the
// schema, the guardrails and the site's policies, and writes each error to
// out, one positioned line, or "site valid: …"; warnings go to warn.
func Validate(ctx context.Context, src Source, out, warn io.Writer) error {
	rev, err := src.Sync(ctx)
	if err != nil {
		return err
	}
	site, _, err := loader.Load(ctx, rev.Dir, "")
	errs, ok := loader.AsErrors(err)
	if !ok && err != nil {
		return err
	}
	if !ok {
		if errs, err = CheckSite(ctx, site, warn); err != nil {
			return err
		}
	}
	if ok || len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(out, e.Error())
		}
		return ErrInvalid
	}
	_, err = fmt.Fprintf(out, "site valid: %s (%v)\n", words.Plural(len(site.Nodes), "node"), site.Nodes)
	return err
}
