package loader

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/goldenfile"
	"github.com/google/go-cmp/cmp"
)

// TestBrokenSites checks the exact, positioned messages an operator gets
// for each kind of mistake (golden files testdata/NAME.golden).
func TestBrokenSites(t *testing.T) {
	for _, name := range []string{"wrong-type", "vrid-300", "misspelt", "no-priority", "all-at-once", "semantic", "unit-control", "bad-names", "bad-source", "bad-http"} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Load(context.Background(), filepath.Join("testdata", name), "")
			errs, ok := AsErrors(err)
			if !ok {
				t.Fatalf("want positioned errors, got %v", err)
			}
			got := errs.Error() + "\n"
			golden := filepath.Join("testdata", name+".golden")
			goldenfile.Check(t, golden, []byte(got))
			for _, e := range errs {
				if e.File == "" || e.Line == 0 || strings.HasPrefix(e.File, "(schema)") {
					t.Errorf("error not positioned in the site's files: %+v", e)
				}
			}
		})
	}
}

func TestExampleSites(t *testing.T) {
	for _, tc := range []struct {
		dir   string
		nodes []string
	}{
		{"../../examples/lab", []string{"gw1", "gw2"}},
		{"../../examples/seed-site", []string{"server-1", "server-2"}},
	} {
		site, _, err := Load(context.Background(), tc.dir, "")
		if err != nil {
			t.Fatalf("%s: %v", tc.dir, err)
		}
		if d := cmp.Diff(tc.nodes, site.Nodes); d != "" {
			t.Errorf("%s nodes (-want +got):\n%s", tc.dir, d)
		}
		for _, n := range tc.nodes {
			if _, view, err := Load(context.Background(), tc.dir, n); err != nil || view.Name != n {
				t.Errorf("%s node %s: view %v, err %v", tc.dir, n, view, err)
			}
		}
	}
}

// TestLabView pins the facts of examples/lab that outside tools rely on.
func TestLabView(t *testing.T) {
	_, v, err := Load(context.Background(), "../../examples/lab", "gw1")
	if err != nil {
		t.Fatal(err)
	}
	in, ok := v.VRRP["VI_1"]
	if !ok {
		t.Fatal("VI_1 missing from gw1's view")
	}
	if in.VRID != 51 || in.Version != 3 || in.AdvertInterval.String() != "100ms" ||
		in.Nodes["gw1"].Priority != 150 || in.Nodes["gw2"].Priority != 100 || !in.Preempt ||
		len(in.VIPs) != 1 || in.VIPs[0].Address.String() != "203.0.113.100/24" || in.Interface != "eth0" {
		t.Errorf("VI_1 = %+v", in)
	}
	if pa := in.PeerAddresses; len(pa["gw1"]) != 1 || pa["gw2"][0].String() != "203.0.113.12/24" {
		t.Errorf("VI_1 peer addresses = %v", pa)
	}
	web := v.Services["web"]
	if len(web.Binds) != 1 || web.Binds[0] != "203.0.113.100:80" || web.Balance != "roundrobin" ||
		web.Servers["s1"].Address != "198.51.100.11:8080" || web.Servers["s2"].Address != "198.51.100.12:8080" ||
		web.Check == nil || web.Check.Kind != "tcp" || web.Check.Interval.String() != "1s" || web.Check.Rise != 2 || web.Check.Fall != 2 {
		t.Errorf("web = %+v", web)
	}
	if got := v.Units["app"].InstancesFor("gw1"); strings.Join(got, ",") != "8080,8081" {
		t.Errorf("app instances = %v", got)
	}
	if a := v.Node.Interfaces["eth0"].Addresses; len(a) != 1 || a[0].String() != "203.0.113.11/24" {
		t.Errorf("eth0 addresses = %v", a)
	}
	if v.Node.Tuning.Sysctls["net.ipv4.ip_nonlocal_bind"] != "1" || v.Node.Tuning.Sysctls["net.ipv4.ip_forward"] != "1" {
		t.Errorf("sysctls = %v", v.Node.Tuning.Sysctls)
	}
	if nic := v.Node.Tuning.Interfaces["eth0"]; nic.RPSCPUs != "all" || nic.RPSFlowCnt == nil || *nic.RPSFlowCnt != 32768 {
		t.Errorf("eth0 tuning = %+v", nic)
	}
}

func TestUnknownNode(t *testing.T) {
	_, _, err := Load(context.Background(), "../../examples/lab", "gw9")
	if err == nil || !strings.Contains(err.Error(), `node "gw9" is not declared`) {
		t.Fatalf("err = %v", err)
	}
}

// TestScopes: ScopeSite rejects an error anywhere; ScopeNode evaluates the
// schema on the node's own part only (the whole site is CI's to validate),
// but still reports that part's errors with their positions.
func TestScopes(t *testing.T) {
	dir := filepath.Join("testdata", "other-node-broken")
	ctx := context.Background()
	for _, node := range []string{"gw1", "gw2"} {
		_, _, err := LoadWith(ctx, dir, node, Options{Scope: ScopeSite})
		if errs, ok := AsErrors(err); !ok || !strings.Contains(errs.Error(), "site.cue:18:14: vrrp.VI_2.vrid: invalid value 520") {
			t.Errorf("site scope, %s: err = %v", node, err)
		}
	}
	s, view, err := LoadWith(ctx, dir, "gw1", Options{Scope: ScopeNode})
	if err != nil {
		t.Fatalf("node scope, gw1: %v", err)
	}
	if s.Scope != ScopeNode || len(view.VRRP) != 1 || view.VRRP["VI_1"].Version != 3 || view.VRRP["VI_1"].AdvertInterval.String() != "1s" {
		t.Errorf("node scope, gw1: scope %s view %+v", s.Scope, view.VRRP)
	}
	_, _, err = LoadWith(ctx, dir, "gw2", Options{Scope: ScopeNode})
	if errs, ok := AsErrors(err); !ok || errs.Error() != "site.cue:18:14: vrrp.VI_2.vrid: invalid value 520 (out of bound <=255)" {
		t.Errorf("node scope, gw2: err = %v", err)
	}
	// Auto is the site scope for a site this small.
	if s, _, err := LoadWith(ctx, "../../examples/lab", "gw1", Options{}); err != nil || s.Scope != ScopeSite {
		t.Errorf("auto on the lab site: scope %v err %v", s, err)
	}
	// The node scope yields the same view as the site scope.
	_, a, err1 := LoadWith(ctx, "../../examples/seed-site", "server-2", Options{Scope: ScopeSite})
	_, b, err2 := LoadWith(ctx, "../../examples/seed-site", "server-2", Options{Scope: ScopeNode})
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	ja, _ := json.MarshalIndent(a, "", " ")
	jb, _ := json.MarshalIndent(b, "", " ")
	if d := cmp.Diff(string(ja), string(jb)); d != "" {
		t.Errorf("node and site scope views differ (-site +node):\n%s", d)
	}
}

// TestNodeScopeClosed: in node scope the schema is unified in Go; a misspelt
// field of the node's own part is still an error, with its position.
func TestNodeScopeClosed(t *testing.T) {
	_, _, err := LoadWith(context.Background(), filepath.Join("testdata", "misspelt"), "gw1", Options{Scope: ScopeNode})
	want, rerr := os.ReadFile(filepath.Join("testdata", "misspelt.golden"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if errs, ok := AsErrors(err); !ok || errs.Error()+"\n" != string(want) {
		t.Errorf("node scope errors:\n%v\nwant:\n%s", err, want)
	}
	_, _, err = LoadWith(context.Background(), filepath.Join("testdata", "no-priority"), "gw2", Options{Scope: ScopeNode})
	if errs, ok := AsErrors(err); !ok || !strings.Contains(errs.Error(), "site.cue:13:3: vrrp.VI_1.nodes.gw2.priority: missing value") {
		t.Errorf("node scope, missing priority: %v", err)
	}
}

// TestNodeScopeUnitText: the agent (node scope) refuses what `validate`
// refuses in a unit template's strings and in interface and sysctl names,
// with the same positioned errors (testdata/unit-control.golden,
// testdata/bad-names.golden).
func TestNodeScopeUnitText(t *testing.T) {
	for _, name := range []string{"unit-control", "bad-names"} {
		_, _, err := LoadWith(context.Background(), filepath.Join("testdata", name), "gw1", Options{Scope: ScopeNode})
		want, rerr := os.ReadFile(filepath.Join("testdata", name+".golden"))
		if rerr != nil {
			t.Fatal(rerr)
		}
		if errs, ok := AsErrors(err); !ok || errs.Error()+"\n" != string(want) {
			t.Errorf("%s, node scope:\n%v\nwant:\n%s", name, err, want)
		}
	}
}

func TestScopeCheck(t *testing.T) {
	for _, s := range []Scope{ScopeAuto, ScopeSite, ScopeNode} {
		if err := s.Check(); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if err := Scope("sites").Check(); err == nil || err.Error() != `--scope "sites": want auto, site or node` {
		t.Errorf("sites: %v", err)
	}
}
