package planapply

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/reconcile"
)

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		format string
		json   bool
		want   string
		err    string
	}{
		{"text", false, "text", ""},
		{"markdown", false, "markdown", ""},
		{"text", true, "json", ""}, // --json, the older spelling
		{"json", true, "json", ""},
		{"markdown", true, "", "--json and --format markdown: give one of them"},
		{"yaml", false, "", `--format "yaml": want text, json or markdown`},
	} {
		got, err := ParseFormat(tc.format, tc.json)
		if got != tc.want || tc.err == "" && err != nil || tc.err != "" && (err == nil || err.Error() != tc.err) {
			t.Errorf("%q json=%v: %q %v, want %q %q", tc.format, tc.json, got, err, tc.want, tc.err)
		}
	}
}

// TestConfirm: only "yes" applies, and input that is not a terminal (a
// file, a pipe) is never read as an answer.
func TestConfirm(t *testing.T) {
	for in, want := range map[string]bool{"yes\n": true, " yes \n": true, "y\n": false, "": false, "YES\n": false} {
		var out bytes.Buffer
		if got := Confirm(strings.NewReader(in), &out); got != want || !strings.Contains(out.String(), "Only 'yes' is accepted") {
			t.Errorf("%q: %v (asked %q), want %v", in, got, out.String(), want)
		}
	}
	f, err := os.CreateTemp(t.TempDir(), "answer")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("yes\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if Confirm(f, &out) || !strings.Contains(out.String(), "Not a terminal: use --auto-approve") {
		t.Fatalf("a file's yes was taken as an answer: %q", out.String())
	}
}

// TestCommandRefusals: what plan and apply refuse before opening the site.
func TestCommandRefusals(t *testing.T) {
	ctx := context.Background()
	site := reconcile.SourceConfig{Dir: "../../examples/lab"}
	var out bytes.Buffer
	c := &Command{Source: site, Node: "gw1", Observed: Observed{Source: "status"}, Out: "gw1.plan", Stdout: &out, Stderr: &out}
	if _, err := c.WritePlan(ctx); err == nil || !strings.Contains(err.Error(), "--out saves a plan for gitgw apply") {
		t.Errorf("--out with --observed: %v", err)
	}
	c = &Command{Source: site, Stdout: &out, Stderr: &out}
	if _, err := c.WritePlan(ctx); err == nil || err.Error() != "--node is empty and the hostname is unknown" {
		t.Errorf("no node: %v", err)
	}
	if _, err := c.WritePlanAll(ctx, "text", 0, false); err == nil || !strings.Contains(err.Error(), "add --observed status") {
		t.Errorf("--all-nodes without --observed: %v", err)
	}
	c.Observed.Source = "status"
	if _, err := c.WritePlanAll(ctx, "text", 0, true); err == nil || err.Error() != "--node and --all-nodes: give one of them" {
		t.Errorf("--all-nodes with --node: %v", err)
	}
	c.Scope = "everything"
	if _, err := c.WritePlanAll(ctx, "text", 0, false); err == nil || err.Error() != `--scope "everything": want auto, site or node` {
		t.Errorf("a bad scope: %v", err)
	}
	c = &Command{Source: reconcile.SourceConfig{}, Node: "gw1", Stdout: &out, Stderr: &out}
	if err := c.Apply(ctx); err == nil || !strings.Contains(err.Error(), "say where the site is") {
		t.Errorf("apply with no site: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("refusals printed %q", out.String())
	}
}
