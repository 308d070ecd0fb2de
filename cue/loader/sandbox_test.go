package loader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/goldenfile"
	"github.com/google/go-cmp/cmp"
)

// TestSandboxSameResults: a load in the sandbox gives what a load in the
// process gives: the node views, the node lists, the whole site, and the
// positioned errors of every broken fixture, the site policies and the
// located errors.
func TestSandboxSameResults(t *testing.T) {
	ctx := context.Background()
	sctx := WithSandbox(ctx, testSandbox(t))
	js := func(v any) string {
		b, err := json.MarshalIndent(v, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct{ dir, node string }{
		{"../../examples/lab", ""}, {"../../examples/lab", "gw2"},
		{"../../examples/demo", ""}, {"../../examples/demo", "gw1"},
		{"../../examples/seed-site", ""}, {"../../examples/seed-site", "server-2"},
	} {
		s1, v1, err1 := Load(ctx, tc.dir, tc.node)
		s2, v2, err2 := Load(sctx, tc.dir, tc.node)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s %q: %v / %v", tc.dir, tc.node, err1, err2)
		}
		if d := cmp.Diff(js(v1), js(v2)); d != "" {
			t.Errorf("%s %q view (-process +sandbox):\n%s", tc.dir, tc.node, d)
		}
		if !cmp.Equal(s1.Nodes, s2.Nodes) || s1.Scope != s2.Scope || s1.Dir != s2.Dir {
			t.Errorf("%s %q: site %v %v %v, sandbox %v %v %v", tc.dir, tc.node, s1.Nodes, s1.Scope, s1.Dir, s2.Nodes, s2.Scope, s2.Dir)
		}
		if tc.node == "" {
			w1, err1 := s1.Whole()
			w2, err2 := s2.Whole()
			if err1 != nil || err2 != nil {
				t.Fatalf("%s whole: %v / %v", tc.dir, err1, err2)
			}
			if d := cmp.Diff(js(w1), js(w2)); d != "" {
				t.Errorf("%s whole (-process +sandbox):\n%s", tc.dir, d)
			}
			probe := Errors{{Path: "nodes." + s1.Nodes[0], Msg: "probe"}}
			if d := cmp.Diff(s1.Locate(probe), s2.Locate(probe)); d != "" {
				t.Errorf("%s located (-process +sandbox):\n%s", tc.dir, d)
			}
		}
	}
	for _, name := range []string{"wrong-type", "vrid-300", "misspelt", "no-priority", "all-at-once", "semantic", "unit-control", "bad-names"} {
		_, _, err := Load(sctx, filepath.Join("testdata", name), "")
		errs, ok := AsErrors(err)
		if !ok {
			t.Fatalf("%s: want positioned errors, got %v", name, err)
		}
		goldenfile.Check(t, filepath.Join("testdata", name+".golden"), []byte(errs.Error()+"\n"))
	}
	errs, err := SitePolicies(sctx, filepath.Join("testdata", "site-policies"))
	if err != nil {
		t.Fatal(err)
	}
	goldenfile.Check(t, filepath.Join("testdata", "site-policies.golden"), []byte(errs.Error()+"\n"))
	if _, _, err := Load(sctx, "../../examples/lab", "gw9"); err == nil || !strings.Contains(err.Error(), `node "gw9" is not declared`) {
		t.Errorf("unknown node in the sandbox: %v", err)
	}
}

// bombSite writes a site whose one file doubles a string n times: 2^n
// bytes from a file of a few hundred.
func bombSite(t testing.TB, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("package site\n\n_s0: \"x\" + \"x\"\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "_s%d: _s%d + _s%d\n", i, i-1, i-1)
	}
	fmt.Fprintf(&b, "nodes: gw1: interfaces: eth0: addresses: [\"203.0.113.11/24\"]\nunits: app: {description: _s%d, exec_start: \"/bin/true\", instances: [{list: [\"1\"]}]}\n", n-1)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"cue.mod/module.cue": "module: \"example.net/bomb@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue":           b.String(),
	})
	return dir
}

func maxRSS(t testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return ru.Maxrss << 10
}

// TestSandboxBomb: a site of string doublings (2^40 bytes asked for by a
// file of a few hundred) is stopped by the child's memory budget; the load
// fails with an error positioned in the site's file, the agent's own
// process does not grow, and the next load works.
func TestSandboxBomb(t *testing.T) {
	dir := bombSite(t, 40)
	sb := testSandbox(t)
	sb.Memory = 512 << 20
	ctx := WithSandbox(context.Background(), sb)
	before := maxRSS(t)
	for _, node := range []string{"", "gw1"} {
		_, _, err := Load(ctx, dir, node)
		errs, ok := AsErrors(err)
		if !ok || len(errs) != 1 {
			t.Fatalf("node %q: want one positioned error, got %v", node, err)
		}
		if e := errs[0]; e.File != "site.cue" || e.Line != 1 || !strings.Contains(e.Msg, "evaluation stopped: it needed more than 512 MiB of memory") {
			t.Errorf("node %q: %+v", node, e)
		}
	}
	if grew := maxRSS(t) - before; grew > 64<<20 {
		t.Errorf("the process's peak RSS grew by %d MiB", grew>>20)
	}
	if _, _, err := Load(ctx, "../../examples/lab", "gw1"); err != nil {
		t.Errorf("a good site after the bomb: %v", err)
	}
	// With a second file, the error cannot say which: it names the site.
	writeTree(t, dir, map[string]string{"names/names.cue": "package names\n"})
	_, _, err := Load(ctx, dir, "gw1")
	if errs, ok := AsErrors(err); !ok || len(errs) != 1 || errs[0].File != "" || !strings.HasSuffix(errs[0].Msg, "(site "+dir+")") {
		t.Errorf("two files: %v", err)
	}
}

// TestSandboxCPU: a site that only computes (a comprehension of 1.6·10^9
// steps in little memory) is stopped by the CPU budget, or by the
// wall-clock bound.
func TestSandboxCPU(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"cue.mod/module.cue": "module: \"example.net/spin@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

import "list"

_n: [for i in list.Range(0, 40000, 1) for j in list.Range(0, 40000, 1) if i*j == -1 {i}]
nodes: gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]
site: name: "x\(len(_n))"
`,
	})
	// The CPU budget, with a wall-clock bound far away (a busy machine
	// gives the child less than a CPU).
	sb := testSandbox(t)
	sb.CPU, sb.Timeout = 2*time.Second, 5*time.Minute
	_, _, err := Load(WithSandbox(context.Background(), sb), dir, "gw1")
	errs, ok := AsErrors(err)
	if !ok || len(errs) != 1 || errs[0].File != "site.cue" || !strings.Contains(errs[0].Msg, "evaluation stopped: it used more than 2s of CPU time") {
		t.Fatalf("want the CPU budget's error, got %v", err)
	}
	// The wall-clock bound: the child is killed at its timeout.
	sb.CPU, sb.Timeout = time.Minute, time.Second
	start := time.Now()
	_, _, err = Load(WithSandbox(context.Background(), sb), dir, "gw1")
	errs, ok = AsErrors(err)
	if !ok || len(errs) != 1 || errs[0].File != "site.cue" || !strings.Contains(errs[0].Msg, "evaluation stopped: it took longer than 1s") {
		t.Fatalf("want the timeout's error, got %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("stopped after %s", d)
	}
}

// TestSandboxConfined: the escapes of TestConfinedToSite are refused in the
// child as well.
func TestSandboxConfined(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret.cue": "package site\n\nsite: name: \"" + secret + " \"\n"})
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"cue.mod/module.cue": "module: \"example.net/t@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue":           baseSite,
		"leak.cue":           "->" + filepath.Join(outside, "secret.cue"),
	})
	_, _, err := Load(WithSandbox(context.Background(), testSandbox(t)), dir, "gw1")
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "leak.cue:1:1: a site may not contain symlinks") {
		t.Errorf("err = %v", err)
	}
}

// TestHugeValueClipped: a value of megabytes that breaks a constraint is
// quoted in the error only in part (the error goes to logs and commits).
func TestHugeValueClipped(t *testing.T) {
	dir := bombSite(t, 22) // a description of 4 MiB
	b := []byte(strings.Replace(string(readFile(t, filepath.Join(dir, "site.cue"))), `_s0: "x" + "x"`, `_s0: "x" + "\r"`, 1))
	writeTree(t, dir, map[string]string{"site.cue": string(b)})
	_, _, err := Load(context.Background(), dir, "")
	errs, ok := AsErrors(err)
	if !ok || len(errs) != 1 {
		t.Fatalf("want one positioned error, got %.2000v", err)
	}
	if e := errs[0]; len(e.Msg) > 2000 || e.File != "site.cue" || !strings.Contains(e.Msg, "a control character") || !strings.Contains(e.Msg, "bytes)…") {
		t.Errorf("error of %d bytes: %.2000s", len(e.Msg), e.Error())
	}
}

// TestNodeLabels: every node's labels in one evaluation, the same in the
// sandbox.
func TestNodeLabels(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"cue.mod/module.cue": "module: \"example.net/t@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

nodes: gw1: {labels: {rack: "a", wave: "1"}, interfaces: eth0: addresses: ["203.0.113.11/24"]}
nodes: gw2: interfaces: eth0: addresses: ["203.0.113.12/24"]
`,
	})
	want := map[string]map[string]string{"gw1": {"rack": "a", "wave": "1"}, "gw2": {}}
	for _, ctx := range []context.Context{context.Background(), WithSandbox(context.Background(), testSandbox(t))} {
		got, err := NodeLabels(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("labels (-want +got):\n%s", d)
		}
	}
}

// TestSiteNodeLabels: a load keeps every node's labels from its one
// evaluation, whatever the scope, and a sandboxed load brings them back
// when the node's view has rollout waves (their only reader).
func TestSiteNodeLabels(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"cue.mod/module.cue": "module: \"example.net/t@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

site: rollout: waves: [{labels: ring: "canary"}]
nodes: gw1: {labels: {ring: "canary"}, interfaces: eth0: addresses: ["203.0.113.11/24"]}
nodes: gw2: interfaces: eth0: addresses: ["203.0.113.12/24"]
`,
	})
	want := map[string]map[string]string{"gw1": {"ring": "canary"}, "gw2": {}}
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		scope Scope
	}{
		{"site scope", context.Background(), ScopeSite},
		{"node scope", context.Background(), ScopeNode},
		{"sandbox", WithSandbox(context.Background(), testSandbox(t)), ScopeAuto},
	} {
		s, _, err := LoadWith(tc.ctx, dir, "gw2", Options{Scope: tc.scope})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := s.NodeLabels()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: labels (-want +got):\n%s", tc.name, d)
		}
	}
}

// TestUnknownNodeCrossesTheSandbox: a node the site does not declare is
// told apart from an invalid site, in process and through the child (the
// agent stops at start on it).
func TestUnknownNodeCrossesTheSandbox(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"cue.mod/module.cue": "module: \"example.net/t@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

nodes: gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]
`,
	})
	for _, ctx := range []context.Context{context.Background(), WithSandbox(context.Background(), testSandbox(t))} {
		_, _, err := Load(ctx, dir, "gw9")
		var un *UnknownNodeError
		if !errors.Is(err, ErrUnknownNode) || !errors.As(err, &un) || un.Node != "gw9" || len(un.Nodes) != 1 || un.Nodes[0] != "gw1" {
			t.Fatalf("Load for gw9 = %v (%T), want an *UnknownNodeError", err, err)
		}
	}
}

// TestSelf: Self's sandbox runs this very binary (the test binary serves
// ChildCommand like gitgw does) within the budget it is given.
func TestSelf(t *testing.T) {
	s, _, err := Load(WithSandbox(context.Background(), Self(256<<20, 10*time.Second, 0)), "../../examples/lab", "")
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(s.Nodes, []string{"gw1", "gw2"}) {
		t.Errorf("nodes %v", s.Nodes)
	}
	if _, _, err := Load(WithSandbox(context.Background(), Self(1<<20, 10*time.Second, 0)), "../../examples/lab", ""); err == nil {
		t.Error("a 1 MiB budget was not enforced: Self does not run the child with its budget")
	}
}
