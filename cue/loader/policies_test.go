package loader

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gitgw/gitgw/test/goldenfile"
	"github.com/google/go-cmp/cmp"
)

// TestSitePolicies: the fixture site breaks two organisation rules, one a
// constraint on the site's fields, one a #checks rule; each is reported at
// the site's value with the rule's name (testdata/site-policies.golden).
// The site itself, loaded without its policies, is valid.
func TestSitePolicies(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join("testdata", "site-policies")
	if _, _, err := Load(ctx, dir, "gw1"); err != nil {
		t.Fatalf("the site without its policies: %v", err)
	}
	errs, err := SitePolicies(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	got := errs.Error() + "\n"
	golden := filepath.Join("testdata", "site-policies.golden")
	goldenfile.Check(t, golden, []byte(got))
	for _, e := range errs {
		if e.File != "site.cue" || e.Line == 0 {
			t.Errorf("not positioned at the site's value: %+v", e)
		}
	}
	// A site without policies/ has none, and costs nothing.
	if errs, err := SitePolicies(ctx, "../../examples/lab"); err != nil || len(errs) > 0 {
		t.Errorf("lab site: %v %v", errs, err)
	}
}

// TestSitePoliciesOtherPackage: a policy file of another package would be
// silently ignored by CUE; it is reported instead.
func TestSitePoliciesOtherPackage(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"cue.mod/module.cue": "module: \"example.net/x@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue":           "package site\n\nnodes: gw1: interfaces: eth0: addresses: [\"203.0.113.11/24\"]\n",
		"policies/org.cue":   "package org\n\nvrrp: [_]: version: 3\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	errs, err := SitePolicies(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := `policies/org.cue:1:1: [org] a site policy must be in the site's package "site", not "org"`
	if len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("got %v, want %s", errs, want)
	}
}

// TestLocate positions errors found by Go checks over decoded values, by
// their field path, with and without an evaluated site at hand.
func TestLocate(t *testing.T) {
	ctx := context.Background()
	dir := "../../examples/lab"
	in := Errors{
		{Path: "vrrp.VI_1.vrid", Msg: "[vrid-unique] x"},
		{Path: "services.web.servers", Msg: "[server-removal] y"},
		{Path: "vrrp.VI_1.vips.0", Msg: "[vip-in-subnet] z"},
	}
	got, err := Locate(ctx, dir, in)
	if err != nil {
		t.Fatal(err)
	}
	site, _, err := Load(ctx, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(got, site.Locate(in)); d != "" {
		t.Errorf("Locate and Site.Locate differ:\n%s", d)
	}
	for _, e := range got {
		if e.File != "site.cue" || e.Line == 0 || e.Col == 0 {
			t.Errorf("not positioned: %+v", e)
		}
	}
	if in[0].File != "" {
		t.Errorf("Locate changed its input")
	}
	whole, err := site.Whole()
	if err != nil {
		t.Fatal(err)
	}
	if len(whole.Nodes) != 2 || whole.VRRP["VI_1"].VRID != 51 || len(whole.Services["web"].Servers) != 2 {
		t.Errorf("whole site: %+v", whole)
	}
}
