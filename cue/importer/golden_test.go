package importer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/test/goldenfile"
)

// goldenCase imports files from testdata and compares the site and the
// warnings with testdata/NAME.golden.
type goldenCase struct {
	name       string
	keepalived []Input // Path relative to testdata; Data read by the test
	haproxy    []Input
	nodes      []string
}

var goldenCases = []goldenCase{
	{name: "seed003", keepalived: []Input{
		{Node: "gw1", Path: "seed003/keepalived-master.conf"},
		{Node: "gw2", Path: "seed003/keepalived-backup.conf"},
	}, haproxy: []Input{{Path: "seed003/haproxy.cfg"}}},
	{name: "seed003-haproxy-per-node", keepalived: []Input{
		{Node: "gw1", Path: "seed003/keepalived-master.conf"},
		{Node: "gw2", Path: "seed003/keepalived-backup.conf"},
	}, haproxy: []Input{{Node: "gw1", Path: "seed003/haproxy.cfg"}}},
	{name: "seed003-unnamed", keepalived: []Input{
		{Path: "seed003/keepalived-master.conf"},
		{Path: "seed003/keepalived-backup.conf"},
	}},
	{name: "seed001", keepalived: []Input{
		{Node: "lb1", Path: "seed001/keepalived-master.conf"},
		{Node: "lb2", Path: "seed001/keepalived-backup.conf"},
	}, haproxy: []Input{{Path: "seed001/haproxy.cfg"}}},
	{name: "seed001-haproxy-lb1-only", keepalived: []Input{
		{Node: "lb1", Path: "seed001/keepalived-master.conf"},
		{Node: "lb2", Path: "seed001/keepalived-backup.conf"},
	}, haproxy: []Input{{Node: "lb1", Path: "seed001/haproxy.cfg"}}},
	{name: "seed004", keepalived: []Input{
		{Node: "master", Path: "seed004/keepalived-master.conf"},
		{Node: "backup", Path: "seed004/keepalived-backup.conf"},
	}},
	{name: "haproxy-only", haproxy: []Input{{Path: "full/haproxy.cfg"}}},
	{name: "haproxy-only-nodes", haproxy: []Input{{Path: "seed003/haproxy.cfg"}}, nodes: []string{"lb1", "lb2"}},
	{name: "haproxy-per-node-reversed", haproxy: []Input{
		{Node: "gw2", Path: "seed003/haproxy.cfg"},
		{Node: "gw1", Path: "seed003/haproxy.cfg"},
	}, keepalived: []Input{
		{Node: "gw1", Path: "seed003/keepalived-master.conf"},
		{Node: "gw2", Path: "seed003/keepalived-backup.conf"},
	}},
	{name: "seed004-template", keepalived: []Input{{Node: "gw1", Path: "seed004/template.conf"}}},
	{name: "unicast", keepalived: []Input{
		{Node: "gw1", Path: "unicast/gw1.conf"},
		{Node: "gw2", Path: "unicast/gw2.conf"},
	}},
	// virtual_servers with no checker, UDP and TCP: unchecked: true.
	{name: "unchecked", keepalived: []Input{{Node: "gw1", Path: "unchecked/gw1.conf"}}},
	{name: "source", haproxy: []Input{{Path: "source/haproxy.cfg"}}, nodes: []string{"gw1"}},
	{name: "full", keepalived: []Input{
		{Node: "gw1", Path: "full/gw1.conf"},
		{Node: "gw2", Path: "full/gw2.conf"},
	}, haproxy: []Input{{Path: "full/haproxy.cfg"}}},
}

func (c goldenCase) run(t *testing.T) (*Result, string) {
	t.Helper()
	read := func(ins []Input) []Input {
		out := make([]Input, len(ins))
		for i, in := range ins {
			b, err := os.ReadFile(filepath.Join("testdata", in.Path))
			if err != nil {
				t.Fatal(err)
			}
			out[i] = Input{Node: in.Node, Path: in.Path, Data: b}
		}
		return out
	}
	res, err := Import(Options{Keepalived: read(c.keepalived), HAProxy: read(c.haproxy), Nodes: c.nodes})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	dir := t.TempDir()
	if err := WriteDir(dir, res.Files, false); err != nil {
		t.Fatal(err)
	}
	return res, dir
}

// goldenText is what a golden file holds: the warnings, then each file.
func goldenText(res *Result) string {
	var b strings.Builder
	b.WriteString("-- warnings --\n")
	for _, w := range res.Warnings {
		b.WriteString(w.String() + "\n")
	}
	if len(res.Refused) > 0 {
		b.WriteString("-- refused --\n")
		for _, r := range res.Refused {
			b.WriteString(r.String() + "\n")
		}
	}
	for _, f := range res.Files {
		b.WriteString("-- " + f.Name + " --\n")
		b.Write(f.Data)
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			res, dir := c.run(t)
			got := goldenText(res)
			path := filepath.Join("testdata", c.name+".golden")
			goldenfile.Check(t, path, []byte(got))
			// Every imported site is valid, for every node.
			for _, n := range res.Nodes {
				if _, _, err := loader.Load(context.Background(), dir, n); err != nil {
					t.Errorf("node %s: the imported site does not load:\n%v\n%s", n, err, got)
				}
			}
		})
	}
}

// load imports a case and returns the node views.
func load(t *testing.T, name string) map[string]*spec.Node {
	t.Helper()
	for _, c := range goldenCases {
		if c.name != name {
			continue
		}
		res, dir := c.run(t)
		views := map[string]*spec.Node{}
		for _, n := range res.Nodes {
			_, v, err := loader.Load(context.Background(), dir, n)
			if err != nil {
				t.Fatalf("node %s: %v", n, err)
			}
			views[n] = v
		}
		return views
	}
	t.Fatalf("no case %s", name)
	return nil
}
