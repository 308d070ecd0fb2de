package reconcile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/test/goldenfile"
)

// TestCheckSite: the lab site passes; the site's own policies are errors,
// positioned in its files; a built-in guardrail's warning (a password in
// clear) goes to warn, positioned too, and is no error.
func TestCheckSite(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, dir string) ([]string, string) {
		t.Helper()
		site, _, err := loader.Load(ctx, dir, "")
		if err != nil {
			t.Fatal(err)
		}
		var warn bytes.Buffer
		errs, err := CheckSite(ctx, site, &warn)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range errs {
			got = append(got, e.Error())
		}
		return got, warn.String()
	}
	if errs, warn := check(t, "../examples/lab"); len(errs) > 0 || warn != "" {
		t.Errorf("lab: errors %q, warnings %q", errs, warn)
	}
	errs, _ := check(t, "../cue/loader/testdata/site-policies")
	want := []string{
		"site.cue:10:19: vrrp.VI_1.version: [vrrpv3] conflicting values 3 and 2",
		"site.cue:15:11: services.web: [min_servers] service web has 2 servers; at least 3 are required",
	}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("site policies (-want +got):\n%s", diff)
	}
	// The lab site with VRRPv2 and a password in clear.
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../examples/lab")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "site.cue"))
	if err != nil {
		t.Fatal(err)
	}
	v2 := strings.Replace(strings.Replace(string(b), `version:         3`, `version: 2, auth: {type: "pass", password: "s3cr3t"}`, 1),
		`advert_interval: "100ms"`, `advert_interval: "1s"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "site.cue"), []byte(v2), 0o644); err != nil {
		t.Fatal(err)
	}
	errs, warn := check(t, dir)
	if len(errs) > 0 || !strings.HasPrefix(warn, "warning: ") || !strings.Contains(warn, "[secret-in-clear]") {
		t.Errorf("password in clear: errors %q, warnings %q", errs, warn)
	}
}

// TestValidate: what gitgw validate prints for a valid site, a site its
// policies refuse, and a site that does not evaluate.
func TestValidate(t *testing.T) {
	ctx := context.Background()
	run := func(t *testing.T, dir string) (string, error) {
		t.Helper()
		src, err := StaticDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out, warn bytes.Buffer
		err = Validate(ctx, src, &out, &warn)
		return out.String(), err
	}
	if out, err := run(t, "../examples/lab"); err != nil || !strings.HasPrefix(out, "site valid: 2 nodes (") {
		t.Errorf("lab: %v, printed %q", err, out)
	}
	out, err := run(t, "../cue/loader/testdata/site-policies")
	if !errors.Is(err, ErrInvalid) || !strings.Contains(out, "site.cue:15:11: services.web: [min_servers]") || strings.Contains(out, "site valid") {
		t.Errorf("site policies: %v, printed %q", err, out)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../examples/lab")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.cue"), []byte("package site\n\nnodes: gw1: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, dir); !errors.Is(err, ErrInvalid) || !strings.Contains(out, "broken.cue:3:") {
		t.Errorf("a site that does not evaluate: %v, printed %q", err, out)
	}
}

// TestCheckSiteKernelGuardrails: the guardrails of the kernel modes'
// routing (nat-route-back, dr-real-server) as `gitgw validate` prints
// them, positioned in the site's files (testdata/kernel-guardrails.golden).
func TestCheckSiteKernelGuardrails(t *testing.T) {
	ctx := context.Background()
	site, _, err := loader.Load(ctx, "testdata/kernel-guardrails", "")
	if err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	errs, err := CheckSite(ctx, site, &warn)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error() + "\n")
	}
	goldenfile.Check(t, "testdata/kernel-guardrails.golden", []byte(b.String()))
}
