package units

import (
	"testing"
	"time"
)

// TestPlanInstance covers every state an instance can be found in.
func TestPlanInstance(t *testing.T) {
	tmpl := fakeTemplate("v1", "1")
	content := RenderUnit(tmpl)
	written := time.Now()
	file := FileStatus{Content: content, Own: ParseOwnership(content), ModTime: written}
	before := written.Add(-time.Minute)
	after := written.Add(time.Minute)
	for _, tc := range []struct {
		name   string
		st     UnitState
		seen   bool
		report bool
		op     Op
		do     string
		drift  bool
		reason string
	}{
		{name: "unknown to systemd", op: OpCreate, do: "enable+start", reason: "new in site"},
		{name: "never started", seen: true, st: UnitState{LoadState: "loaded", ActiveState: "inactive", UnitFileState: "disabled"}, op: OpCreate, do: "enable+start"},
		{name: "failed, never enabled", seen: true, st: UnitState{LoadState: "loaded", ActiveState: "failed", UnitFileState: "disabled"}, op: OpCreate, do: "reset-failed+enable+start"},
		{name: "up to date", seen: true, st: UnitState{LoadState: "loaded", ActiveState: "active", UnitFileState: "enabled", ActiveEnter: after}, op: OpNoOp},
		{name: "starting", seen: true, st: UnitState{LoadState: "loaded", ActiveState: "activating", UnitFileState: "enabled"}, op: OpNoOp},
		{name: "stopped by hand", seen: true, st: UnitState{LoadState: "loaded", ActiveState: "inactive", UnitFileState: "enabled"}, op: OpUpdate, do: "start", drift: true, reason: "stopped by hand"},
		{name: "stopped by hand, report", seen: true, report: true, st: UnitState{LoadState: "loaded", ActiveState: "inactive", UnitFileState: "enabled"}, op: OpNoOp, drift: true, reason: "stopped by hand (drift mode report: left as is)"},
		{name: "failed", seen: true, st: UnitState{LoadState: "loaded", ActiveState: "failed", UnitFileState: "enabled", Result: "exit-code"}, op: OpUpdate, do: "reset-failed+start", drift: true, reason: "failed (exit-code)"},
		{name: "disabled by hand", seen: true, st: UnitState{LoadState: "loaded", ActiveState: "active", UnitFileState: "disabled", ActiveEnter: after}, op: OpUpdate, do: "enable", drift: true, reason: "disabled by hand"},
		{name: "masked", seen: true, st: UnitState{LoadState: "masked", ActiveState: "active", UnitFileState: "masked"}, op: OpBlocked, drift: true},
		{name: "runs older content", seen: true, st: UnitState{LoadState: "loaded", ActiveState: "active", UnitFileState: "enabled", ActiveEnter: before}, op: OpUpdate, do: "restart", reason: "template changed: rolling restart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Templates: []Template{tmpl}}
			if tc.report {
				cfg.Drift = DriftReport
			}
			obs := Observed{Files: map[string]FileStatus{tmpl.FileName(): file}, Units: map[string]UnitState{}}
			if tc.seen {
				tc.st.Name = "app@1.service"
				obs.Units["app@1.service"] = tc.st
			}
			a, ok := findAction(Diff(cfg, obs), "app@1.service")
			if !ok {
				t.Fatal("no action for the instance")
			}
			if a.Op != tc.op || a.Do != tc.do || a.Drift != tc.drift || (tc.reason != "" && a.Reason != tc.reason) {
				t.Errorf("got op=%s do=%q drift=%v reason=%q; want op=%s do=%q drift=%v reason=%q",
					a.Op, a.Do, a.Drift, a.Reason, tc.op, tc.do, tc.drift, tc.reason)
			}
		})
	}
}

func TestPlanRemovesOnlyOwnedInstances(t *testing.T) {
	owned := RenderUnit(fakeTemplate("v1"))
	obs := Observed{
		Files: map[string]FileStatus{"app@.service": {Content: owned, Own: ParseOwnership(owned)}},
		Units: map[string]UnitState{
			"app@9.service":   {Name: "app@9.service", LoadState: "loaded", ActiveState: "active", UnitFileState: "enabled"},
			"other@1.service": {Name: "other@1.service", LoadState: "loaded", ActiveState: "active", UnitFileState: "enabled"},
			"app@8.service":   {Name: "app@8.service", LoadState: "loaded", ActiveState: "inactive", UnitFileState: "disabled"},
		},
	}
	acts := Diff(Config{Templates: []Template{fakeTemplate("v1")}}, obs)
	if a, ok := findAction(acts, "app@9.service"); !ok || a.Op != OpDelete || a.Do != "stop+disable" {
		t.Errorf("app@9: %+v", a)
	}
	if _, ok := findAction(acts, "other@1.service"); ok {
		t.Error("an instance of a template gitgw does not own is planned")
	}
	if _, ok := findAction(acts, "app@8.service"); ok {
		t.Error("an instance that is stopped and disabled is planned for removal")
	}
	// The template itself goes when the site drops it, with a diff to nothing.
	acts = Diff(Config{}, obs)
	if a, _ := findAction(acts, "app@.service"); a.Op != OpDelete || len(a.Diff) == 0 {
		t.Errorf("template removal: %+v", a)
	}
}
