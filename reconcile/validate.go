package reconcile

import (
	"context"
	"fmt"
	"io"

	"github.com/gitgw/gitgw/cue/loader"
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
