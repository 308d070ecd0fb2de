package loader

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSandboxLocatesFromTheOneEvaluation: a node's view loaded in the
// sandbox carries the positions of its fields, so that policy findings on
// it are placed as an in-process load places them, without evaluating the
// site again (the files are gone by then, and the places are still found).
func TestSandboxLocatesFromTheOneEvaluation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../examples/lab")); err != nil {
		t.Fatal(err)
	}
	in, _, err := Load(ctx, dir, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	sb, _, err := Load(WithSandbox(ctx, testSandbox(t)), dir, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	findings := Errors{
		{Path: "services.web.binds.0", Msg: "[port-clash] a bind", Related: "units.app.instances"},
		{Path: "vrrp.VI_1.nodes.gw1.priority", Msg: "[priority-distinct] a priority"},
		{Path: "services.web.balance", Msg: "a default, placed at its service"},
		{Path: "nodes.gw1.interfaces.eth0.addresses.0", Msg: "an address"},
	}
	want := in.Locate(findings)
	for _, e := range want {
		if e.File == "" {
			t.Fatalf("in-process locate left %v unplaced", e)
		}
	}
	// A second evaluation would find nothing now.
	for _, f := range []string{"site.cue", "units.cue"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("this is not CUE {\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if d := cmp.Diff(want, sb.Locate(findings)); d != "" {
		t.Errorf("sandboxed locate (-in-process +sandbox):\n%s", d)
	}
}
