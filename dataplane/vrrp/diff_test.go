package vrrp

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDiff(t *testing.T) {
	pfx := netip.MustParsePrefix
	base := func(mut ...func(*Instance)) Instance {
		in := Instance{Name: "VI_1", Interface: "eth0", VRID: 51, Version: 3, Interval: 100 * time.Millisecond, Priority: 150,
			VIPs: []VIP{{Prefix: pfx("203.0.113.100/24")}}}
		for _, m := range mut {
			m(&in)
		}
		return in
	}
	prios := map[string]map[string]int{"VI_1": {"gw1": 150, "gw2": 100}}
	// running is an observed instance running cfg in state s, at
	// effective priority eff, hearing master (addr, prio) when backup.
	running := func(cfg Instance, s State, eff uint8, master string, mprio uint8) ObservedInstance {
		applied := redact(cfg.withDefaults())
		st := InstanceStatus{Name: cfg.Name, Interface: cfg.Interface, VRID: cfg.VRID, Version: cfg.Version, State: s,
			BasePriority: cfg.Priority, Priority: eff, MasterPriority: mprio}
		if master != "" {
			st.MasterAddr = netip.MustParseAddr(master)
		}
		if s == StateFault {
			st.Faults = []string{"interface eth1 down"}
		}
		for _, v := range append(cfg.VIPs, cfg.ExcludedVIPs...) {
			st.VIPs = append(st.VIPs, v.Prefix)
		}
		return ObservedInstance{Status: st, Applied: &applied}
	}
	type row struct {
		Kind, ID string
		Op       Op
	}
	for _, c := range []struct {
		name string
		want Instance
		prio map[string]map[string]int
		obs  []ObservedInstance
		rows []row
		// reason and detail are looked for in the instance change (the
		// first); detail in its first detail line (the prediction).
		reason, detail string
		settings       []string // further detail lines, in order
	}{
		{name: "not running: created, master from the site's priorities", want: base(),
			rows:   []row{{KindInstance, "VI_1", OpCreate}, {KindVIP, "VI_1/203.0.113.100/24", OpCreate}},
			reason: "new in site", detail: "master after apply: gw1 (priorities gw1=150, gw2=100)"},
		{name: "not running, equal priorities, nopreempt", want: base(func(in *Instance) { in.NoPreempt = true }),
			prio:   map[string]map[string]int{"VI_1": {"gw1": 100, "gw2": 100}},
			rows:   []row{{KindInstance, "VI_1", OpCreate}, {KindVIP, "VI_1/203.0.113.100/24", OpCreate}},
			detail: "master after apply: decided by primary address (equal priorities gw1=100, gw2=100); nopreempt: a running master keeps the role"},
		{name: "converged master plans no change", want: base(), obs: []ObservedInstance{running(base(), StateMaster, 150, "203.0.113.11", 150)},
			rows:   []row{{KindInstance, "VI_1", OpNoOp}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			detail: "master after apply: gw1 stays master (effective priority 150; site priorities gw1=150, gw2=100)"},
		{name: "converged backup plans no change", want: base(func(in *Instance) { in.Priority = 100 }),
			prio: map[string]map[string]int{"VI_1": {"gw1": 150, "gw2": 100}},
			obs:  []ObservedInstance{running(base(func(in *Instance) { in.Priority = 100 }), StateBackup, 100, "203.0.113.12", 150)},
			rows: []row{{KindInstance, "VI_1", OpNoOp}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			// The site would make gw1 master; the live state says the
			// master heard at 150 keeps the role.
			detail: "master after apply: 203.0.113.12 (priority 150) stays; gw1 stays backup at effective 100"},
		{name: "master lowered below its peer, preempt with delay: the peer takes over",
			want:     base(func(in *Instance) { in.Priority = 90; in.PreemptDelay = 5 * time.Second }),
			prio:     map[string]map[string]int{"VI_1": {"gw1": 90, "gw2": 100}},
			obs:      []ObservedInstance{running(base(func(in *Instance) { in.PreemptDelay = 5 * time.Second }), StateMaster, 150, "203.0.113.11", 150)},
			rows:     []row{{KindInstance, "VI_1", OpUpdate}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			reason:   "changed in site (applied without a transition)",
			detail:   "master after apply: gw2 takes over (priority 100 above gw1's effective 90, after preempt_delay 5s)",
			settings: []string{"Priority 150 → 90", "now MASTER, priority 150 (base 150)"}},
		{name: "master lowered below its peer, nopreempt: it keeps the role",
			want:   base(func(in *Instance) { in.Priority = 90; in.NoPreempt = true }),
			prio:   map[string]map[string]int{"VI_1": {"gw1": 90, "gw2": 100}},
			obs:    []ObservedInstance{running(base(func(in *Instance) { in.NoPreempt = true }), StateMaster, 150, "203.0.113.11", 150)},
			rows:   []row{{KindInstance, "VI_1", OpUpdate}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			detail: "master after apply: gw1 stays master: nopreempt, a running master keeps the role (gw2 has priority 100 above its effective 90)"},
		{name: "tracking weight counts: a master at base 150 tracking -60 yields to the peer's 100",
			want: base(), obs: []ObservedInstance{running(base(), StateMaster, 90, "203.0.113.11", 90)},
			rows:   []row{{KindInstance, "VI_1", OpNoOp}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			detail: "master after apply: gw2 takes over (priority 100 above gw1's effective 90)"},
		{name: "tracking changed in site: said so",
			want: base(func(in *Instance) { in.TrackInterfaces = []TrackInterface{{Name: "eth1", Weight: -60}} }),
			obs:  []ObservedInstance{running(base(), StateMaster, 150, "203.0.113.11", 150)},
			rows: []row{{KindInstance, "VI_1", OpUpdate}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			detail: "master after apply: gw1 stays master (effective priority 150; site priorities gw1=150, gw2=100); " +
				"tracking changed in site: weights counted as they stand now, until the new tracking reports",
			settings: []string{"TrackInterfaces changed", "now MASTER, priority 150 (base 150)"}},
		{name: "backup raised above the master heard: takes over",
			want:   base(func(in *Instance) { in.Priority = 200 }),
			prio:   map[string]map[string]int{"VI_1": {"gw1": 200, "gw2": 150}},
			obs:    []ObservedInstance{running(base(func(in *Instance) { in.Priority = 100 }), StateBackup, 100, "203.0.113.12", 150)},
			rows:   []row{{KindInstance, "VI_1", OpUpdate}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			detail: "master after apply: gw1 takes over from 203.0.113.12 (effective priority 200 above its 150)"},
		{name: "backup raised, but its tracking weight keeps it below the master",
			want:   base(func(in *Instance) { in.Priority = 200 }),
			prio:   map[string]map[string]int{"VI_1": {"gw1": 200, "gw2": 150}},
			obs:    []ObservedInstance{running(base(func(in *Instance) { in.Priority = 100 }), StateBackup, 40, "203.0.113.12", 150)},
			rows:   []row{{KindInstance, "VI_1", OpUpdate}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			detail: "master after apply: 203.0.113.12 (priority 150) stays; gw1 stays backup at effective 140"},
		{name: "backup raised, nopreempt: stays backup",
			want:   base(func(in *Instance) { in.Priority = 200; in.NoPreempt = true }),
			prio:   map[string]map[string]int{"VI_1": {"gw1": 200, "gw2": 150}},
			obs:    []ObservedInstance{running(base(func(in *Instance) { in.Priority = 100; in.NoPreempt = true }), StateBackup, 100, "203.0.113.12", 150)},
			rows:   []row{{KindInstance, "VI_1", OpUpdate}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			detail: "master after apply: 203.0.113.12 (priority 150) stays: nopreempt, gw1 stays backup at effective 200"},
		{name: "backup hearing no master", want: base(), obs: []ObservedInstance{running(base(), StateBackup, 150, "", 0)},
			rows:   []row{{KindInstance, "VI_1", OpNoOp}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			detail: "master after apply: gw1, when its master-down timer expires (no master heard; effective priority 150)"},
		{name: "fault", want: base(), obs: []ObservedInstance{running(base(), StateFault, 150, "", 0)},
			rows:   []row{{KindInstance, "VI_1", OpNoOp}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			detail: "master after apply: another node: gw1 is in fault (interface eth1 down)"},
		{name: "VIP added and VIP removed in place",
			want: base(func(in *Instance) { in.ExcludedVIPs = []VIP{{Prefix: pfx("198.51.100.100/24")}} }),
			obs: []ObservedInstance{running(base(func(in *Instance) { in.VIPs = append(in.VIPs, VIP{Prefix: pfx("203.0.113.101/24")}) }),
				StateMaster, 150, "203.0.113.11", 150)},
			rows: []row{{KindInstance, "VI_1", OpUpdate}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp},
				{KindVIP, "VI_1/198.51.100.100/24", OpCreate}, {KindVIP, "VI_1/203.0.113.101/24", OpDelete}},
			settings: []string{"VIPs changed", "ExcludedVIPs changed", "now MASTER, priority 150 (base 150)"}},
		{name: "password changed: named, never shown", want: base(func(in *Instance) { in.Version, in.Interval, in.AuthPass = 2, time.Second, "new" }),
			obs:      []ObservedInstance{running(base(func(in *Instance) { in.Version, in.Interval, in.AuthPass = 2, time.Second, "old" }), StateMaster, 150, "203.0.113.11", 150)},
			rows:     []row{{KindInstance, "VI_1", OpUpdate}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			settings: []string{"authentication password changed", "now MASTER, priority 150 (base 150)"}},
		{name: "same password: no change", want: base(func(in *Instance) { in.Version, in.Interval, in.AuthPass = 2, time.Second, "same" }),
			obs:  []ObservedInstance{running(base(func(in *Instance) { in.Version, in.Interval, in.AuthPass = 2, time.Second, "same" }), StateMaster, 150, "203.0.113.11", 150)},
			rows: []row{{KindInstance, "VI_1", OpNoOp}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}}},
		{name: "a setting the status does not show (GARP refresh)", want: base(func(in *Instance) { in.GARP.Refresh = time.Minute }),
			obs:      []ObservedInstance{running(base(), StateMaster, 150, "203.0.113.11", 150)},
			rows:     []row{{KindInstance, "VI_1", OpUpdate}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			settings: []string{"GARP changed", "now MASTER, priority 150 (base 150)"}},
		{name: "identity changed: restarted", want: base(func(in *Instance) { in.VRID = 52 }),
			obs:    []ObservedInstance{running(base(), StateMaster, 150, "203.0.113.11", 150)},
			rows:   []row{{KindInstance, "VI_1", OpUpdate}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}},
			reason: "identity changed in site: restarted (leaves, then starts as backup)"},
		{name: "applied config unknown (observed elsewhere): settings taken as desired",
			want: base(func(in *Instance) { in.GARP.Refresh = time.Minute }),
			obs: func() []ObservedInstance {
				o := running(base(), StateMaster, 150, "203.0.113.11", 150)
				o.Applied = nil
				return []ObservedInstance{o}
			}(),
			rows: []row{{KindInstance, "VI_1", OpNoOp}, {KindVIP, "VI_1/203.0.113.100/24", OpNoOp}}},
		{name: "removed instances: a master hands over, a backup just leaves",
			obs: []ObservedInstance{running(base(), StateMaster, 150, "203.0.113.11", 150),
				running(base(func(in *Instance) { in.Name, in.VRID, in.VIPs = "VI_2", 52, []VIP{{Prefix: pfx("203.0.113.102/24")}} }), StateBackup, 150, "203.0.113.12", 200)},
			rows: []row{{KindInstance, "VI_1", OpDelete}, {KindVIP, "VI_1/203.0.113.100/24", OpDelete},
				{KindInstance, "VI_2", OpDelete}, {KindVIP, "VI_2/203.0.113.102/24", OpDelete}},
			reason: "removed from site", detail: "leaves with priority 0; the backup takes over within Skew_Time"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Desired{Node: "gw1", Priorities: prios}
			if c.prio != nil {
				d.Priorities = c.prio
			}
			if c.want.Name != "" {
				d.Config.Instances = []Instance{c.want}
			}
			got := Diff(d, Observed{Instances: c.obs})
			var rows []row
			for _, ch := range got {
				rows = append(rows, row{ch.Kind, ch.ID, ch.Op})
			}
			if diff := cmp.Diff(c.rows, rows); diff != "" {
				t.Fatalf("changes (-want +got):\n%s", diff)
			}
			first := got[0]
			if c.reason != "" && first.Reason != c.reason {
				t.Errorf("reason %q, want %q", first.Reason, c.reason)
			}
			if c.detail != "" && (len(first.Details) == 0 || first.Details[0] != c.detail) {
				t.Errorf("prediction %q,\n want %q", first.Details, c.detail)
			}
			if c.settings != nil {
				if diff := cmp.Diff(c.settings, first.Details[1:]); diff != "" {
					t.Errorf("details after the prediction (-want +got):\n%s", diff)
				}
			}
			for _, ch := range got {
				b, _ := json.Marshal(ch)
				if strings.Contains(string(b), "old") || strings.Contains(string(b), "new\"") {
					t.Errorf("a password shows in %s", b)
				}
			}
			if c.name == "removed instances: a master hands over, a backup just leaves" {
				if d := got[2].Details; len(d) != 1 || d[0] != "leaves; not master here, nothing moves" {
					t.Errorf("removed backup: %q", d)
				}
			}
		})
	}
}

// TestChangedSettings: a change the status does not show (interval,
// preempt, password) is named, and a password never shown.
func TestChangedSettings(t *testing.T) {
	got := ChangedSettings(Instance{Name: "VI_1", Interval: 100 * time.Millisecond, AuthPass: "old"},
		Instance{Name: "VI_1", Interval: 200 * time.Millisecond, AuthPass: "new", NoPreempt: true})
	want := []string{"Interval 100ms → 200ms", "NoPreempt false → true", "authentication password changed"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("changed settings (-want +got):\n%s", d)
	}
	// Defaults count as given: 0 is 1 s, version 0 is 3.
	if got := ChangedSettings(Instance{Name: "VI_1", Interval: time.Second, Version: 3}, Instance{Name: "VI_1"}); got != nil {
		t.Errorf("defaults: %v", got)
	}
	// A redacted applied config compares with the desired password.
	if got := ChangedSettings(redact(Instance{AuthPass: "same"}), Instance{AuthPass: "same"}); got != nil {
		t.Errorf("redacted, same password: %v", got)
	}
}

// TestEngineObserveConvergedMaster: the engine's own Observe, diffed with
// the config it runs, plans no change on a master, predicts that it stays
// master, and gives no password away.
func TestEngineObserveConvergedMaster(t *testing.T) {
	n := newNode(t, &bus{}, "203.0.113.11")
	in := fast("A", 1, 150, "203.0.113.100/24", func(in *Instance) { in.Version, in.Interval, in.AuthPass = 2, time.Second, "secret" })
	cfg := Config{Instances: []Instance{in}}
	if err := n.e.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	n.wait(t, "A", StateMaster)
	obs := n.e.Observe()
	b, err := json.Marshal(obs)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "secret") {
		t.Errorf("observed state shows the password: %s", b)
	}
	var back Observed
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Observed{obs, back} { // in process, and as read from an agent
		changes := Diff(Desired{Node: "gw1", Config: cfg, Priorities: map[string]map[string]int{"A": {"gw1": 150, "gw2": 100}}}, o)
		for _, c := range changes {
			if c.Op != OpNoOp {
				t.Errorf("converged master plans %+v", c)
			}
		}
		if d := changes[0].Details[0]; !strings.HasPrefix(d, "master after apply: gw1 stays master") {
			t.Errorf("prediction %q", d)
		}
	}
}
