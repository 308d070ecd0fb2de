package drift

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/plan"
)

func labSite(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{"cue.mod/module.cue": []byte("module: \"x\"\n")}
	for _, name := range []string{"site.cue", "units.cue"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "lab", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	return files
}

func TestAdoptLabSite(t *testing.T) {
	items := []Item{
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Mode: "report", Observed: json.RawMessage(`"0"`), Desired: json.RawMessage(`"1"`)},
		{Driver: "tuning", Kind: "rps_sock_flow_entries", ID: "net.core.rps_sock_flow_entries", Mode: "report", Observed: json.RawMessage(`"4096"`), Desired: json.RawMessage(`"32768"`)},
		{Driver: "proxy", Kind: "proxy_server", ID: "web/s2", Mode: "report", Observed: json.RawMessage(`{"address":"198.51.100.12:8080","weight":50}`), Desired: json.RawMessage(`{"address":"198.51.100.12:8080","weight":100}`)},
		{Driver: "units", Kind: "unit_instance", ID: "app@8081.service", Mode: "report", Observed: json.RawMessage(`"inactive"`), Desired: json.RawMessage(`"active"`)},
	}
	p := Adopt(labSite(t), items)
	if len(p.Adopted) != 3 || len(p.Listed) != 1 || p.Listed[0].ID != "app@8081.service" {
		t.Fatalf("adopted %d, listed %+v", len(p.Adopted), p.Listed)
	}
	if len(p.Files) != 1 {
		t.Fatalf("files edited: %d", len(p.Files))
	}
	golden(t, "adopt/site.cue", p.Files["site.cue"])
	m := AdoptMessage("gw1", c1, p)
	golden(t, "adopt/message.txt", []byte(m.Subject+"\n\n"+m.Body))
}

func TestAdoptAmbiguousIsListed(t *testing.T) {
	site := map[string][]byte{
		"a.cue": []byte("nodes: gw1: tuning: sysctls: \"net.ipv4.ip_forward\": 1\n"),
		"b.cue": []byte("nodes: gw2: tuning: sysctls: \"net.ipv4.ip_forward\": 1\n"),
	}
	p := Adopt(site, []Item{{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Observed: json.RawMessage(`"0"`)}})
	if len(p.Adopted) != 0 || len(p.Listed) != 1 || len(p.Files) != 0 {
		t.Errorf("an ambiguous edit was made: %+v", p)
	}
}

// TestFleetSplitBrain: split brain and no master per virtual router, keyed
// on (segment, family, VRID): a second segment reusing VRID 51 (as the
// vrid-unique guardrail allows) is a router of its own, with its own
// master, and is no split brain.
func TestFleetSplitBrain(t *testing.T) {
	segment := "198.51.100.0/24"
	mk := func(node, applied, outcome string, roles map[string]int, states []string, drift int) NodeReport {
		st := Status{SchemaVersion: 1, Node: node, Applied: applied, Desired: Revision{Commit: applied}, LastPass: Pass{Outcome: outcome}}
		var v VRRPSection
		i := 0
		for _, name := range sortedKeys(roles) {
			v.Instances = append(v.Instances, VRRPInstance{Name: name, VRID: roles[name], State: states[i], Family: "IPv4", Segments: []string{segment}})
			i++
		}
		st.Sections = map[string]any{"vrrp": v, "proxy": ProxySection{Services: []ProxyService{{Name: "web", Servers: []ProxyServer{{"s1", "", "up"}, {"s2", "", "down"}}}}}}
		for range drift {
			st.Drift = append(st.Drift, Item{Driver: "tuning", Kind: "sysctl", ID: "x"})
		}
		return NodeReport{Node: node, Commit: "c", Subject: "apply(" + node + "): …", Time: at.Add(-90 * time.Second), Status: &st}
	}
	reports := []NodeReport{
		mk("gw1", c1, Converged, map[string]int{"VI_1": 51, "VI_2": 52}, []string{"MASTER", "BACKUP"}, 0),
		mk("gw2", c1, Converged, map[string]int{"VI_1": 51, "VI_2": 52}, []string{"MASTER", "BACKUP"}, 2),
		mk("gw3", c2, Rejected, map[string]int{"VI_1": 51}, []string{"BACKUP"}, 0),
		{Node: "gw4", Commit: "d", Time: at.Add(-3 * time.Hour), Err: "status.json: unexpected end of JSON input"},
	}
	segment = "203.0.113.0/24"
	reports = append(reports,
		mk("gw5", c1, Converged, map[string]int{"VI_9": 51}, []string{"MASTER"}, 0),
		mk("gw6", c1, Converged, map[string]int{"VI_9": 51}, []string{"BACKUP"}, 0))
	reports[2].Status.LastPass.Errors = []Error{{File: "site.cue", Line: 7, Col: 13, Msg: "vrid: invalid value 300"}}
	f := BuildFleet(c1, reports)
	type router struct {
		vrid     int
		segments string
		flag     string
	}
	var got []router
	for _, rt := range f.Routers {
		got = append(got, router{rt.VRID, strings.Join(rt.Segments, ","), rt.Flag})
	}
	want := []router{{51, "198.51.100.0/24", "split-brain"}, {51, "203.0.113.0/24", ""}, {52, "198.51.100.0/24", "no-master"}}
	if !slices.Equal(got, want) {
		t.Errorf("routers = %+v, want %+v", got, want)
	}
	var b bytes.Buffer
	if err := WriteFleetText(&b, f, at); err != nil {
		t.Fatal(err)
	}
	golden(t, "fleet/split-brain.txt", b.Bytes())
	b.Reset()
	if err := WriteFleetJSON(&b, f); err != nil {
		t.Fatal(err)
	}
	golden(t, "fleet/split-brain.json", b.Bytes())
}

func TestObservedPlan(t *testing.T) {
	prev := []plan.Change{
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Pending, After: "1"},
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_nonlocal_bind", Action: plan.Pending, After: "1"},
		{Driver: "proxy", Kind: "proxy_server", ID: "web/s1", Action: plan.Pending, After: "198.51.100.11:8080"},
		{Driver: "proxy", Kind: "proxy_server", ID: "web/s2", Action: plan.Pending, After: "198.51.100.12:8080"},
	}
	next := []plan.Change{
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: plan.Pending, After: "1"},
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_nonlocal_bind", Action: plan.Pending, After: "1"},
		{Driver: "proxy", Kind: "proxy_server", ID: "web/s1", Action: plan.Pending, After: "198.51.100.21:8080"},
		{Driver: "proxy", Kind: "proxy_server", ID: "web/s3", Action: plan.Pending, After: "198.51.100.13:8080"},
	}
	st := Status{Resources: []Resource{
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", State: Open, Observed: json.RawMessage(`"0"`), Desired: json.RawMessage(`"1"`)},
		{Driver: "tuning", Kind: "rps_cpus", ID: "eth0/rx-0", State: Differs, Observed: json.RawMessage(`"0"`), Desired: json.RawMessage(`"3"`)},
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_nonlocal_bind", State: InSync},
	}}
	got := ObservedPlan(prev, next, st)
	var b bytes.Buffer
	if err := plan.WriteText(&b, &plan.Plan{Node: "gw1", Commit: c2, Changes: got}, plan.TextOptions{Verbose: true}); err != nil {
		t.Fatal(err)
	}
	golden(t, "observed/plan.txt", b.Bytes())
	// Nothing reported, nothing applied: everything is to create.
	for _, c := range ObservedPlan(nil, next, Status{}) {
		if c.Action != plan.Create {
			t.Errorf("%s %s: %s, want create", c.Kind, c.ID, c.Action)
		}
	}
}
