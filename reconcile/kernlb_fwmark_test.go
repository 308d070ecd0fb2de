package reconcile

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/goldenfile"
)

// TestKernLBFwmark: a service with binds and fwmarks (keepalived's
// virtual_server_group with fwmark entries) loads from the site, becomes
// one kernel service per bind and per mark, and plans in words: each
// mark's service named with its mark, its servers without a port (the
// client's port kept). Applied to real tables, the plan is empty.
func TestKernLBFwmark(t *testing.T) {
	node := kernNode(t, `
services: mk: {
	mode: "nat", persistence: "900s"
	binds: ["203.0.113.100:80"]
	fwmarks: [1, 2]
	servers: {
		s1: address: "198.51.100.11"
		s2: {address: "198.51.100.12", weight: 2}
	}
	check: {kind: "tcp", port: 80}
}
`)
	svcs, err := KernLBConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ks := range svcs {
		got = append(got, ks.LB.Name+": "+ks.LB.Describe())
	}
	want := []string{
		"mk-0: nat tcp 203.0.113.100:80, wrr, persistence 15m0s",
		"mk-1: nat tcp fwmark 1, wrr, persistence 15m0s",
		"mk-2: nat tcp fwmark 2, wrr, persistence 15m0s",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("translated:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	_, d := kernDriverNetns(t)
	var golden strings.Builder
	text, _ := kernPlanText(t, d, node)
	golden.WriteString("## first apply\n" + text + "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Apply(ctx, node); err != nil {
		t.Fatal(err)
	}
	if text, p := kernPlanText(t, d, node); p.HasChanges() {
		t.Errorf("after Apply, the plan still changes:\n%s", text)
	}
	goldenfile.Check(t, filepath.Join("testdata", "kernlb-fwmark-plan.golden"), []byte(golden.String()))
}
