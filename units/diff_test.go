package units

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDiff covers the unit files: what Diff plans for a template found
// absent, in sync, edited by hand, changed in the site, not gitgw's, or no
// longer in the site, with its instance alongside. TestPlanInstance covers
// every state an instance can be found in.
func TestDiff(t *testing.T) {
	v1, v2 := fakeTemplate("v1", "1"), fakeTemplate("v2", "1")
	file := func(content []byte) FileStatus { return FileStatus{Content: content, Own: ParseOwnership(content)} }
	handEdited := bytes.Replace(RenderUnit(v1), []byte("VERSION=v1"), []byte("VERSION=hand"), 1)
	foreign := []byte("[Service]\nExecStart=/bin/true\n")
	running := map[string]UnitState{"app@1.service": {Name: "app@1.service", LoadState: "loaded", ActiveState: "active", UnitFileState: "enabled"}}
	type row struct {
		ID    string
		Op    Op
		Do    string
		Drift bool
	}
	for _, c := range []struct {
		name   string
		cfg    Config
		files  map[string]FileStatus
		units  map[string]UnitState
		rows   []row
		reason string // of the first action
	}{
		{name: "nothing", cfg: Config{}, rows: nil},
		{name: "new template", cfg: Config{Templates: []Template{v1}},
			rows:   []row{{"app@.service", OpCreate, "write", false}, {"app@1.service", OpCreate, "enable+start", false}},
			reason: "new in site"},
		{name: "in sync", cfg: Config{Templates: []Template{v1}}, files: map[string]FileStatus{"app@.service": file(RenderUnit(v1))}, units: running,
			rows: []row{{"app@.service", OpNoOp, "", false}, {"app@1.service", OpNoOp, "", false}}},
		{name: "edited by hand: written back, no restart", cfg: Config{Templates: []Template{v1}},
			files: map[string]FileStatus{"app@.service": file(handEdited)}, units: running,
			rows:   []row{{"app@.service", OpUpdate, "write", true}, {"app@1.service", OpNoOp, "", false}},
			reason: "edited by hand"},
		{name: "edited by hand, drift mode report: left", cfg: Config{Templates: []Template{v1}, Drift: DriftReport},
			files: map[string]FileStatus{"app@.service": file(handEdited)}, units: running,
			rows:   []row{{"app@.service", OpNoOp, "", true}, {"app@1.service", OpNoOp, "", false}},
			reason: "edited by hand (drift mode report: left as is)"},
		{name: "changed in site: written, instances rolled", cfg: Config{Templates: []Template{v2}},
			files: map[string]FileStatus{"app@.service": file(RenderUnit(v1))}, units: running,
			rows:   []row{{"app@.service", OpUpdate, "write", false}, {"app@1.service", OpUpdate, "restart", false}},
			reason: "template changed in site"},
		{name: "not gitgw's: blocked, never forced", cfg: Config{Templates: []Template{v1}},
			files: map[string]FileStatus{"app@.service": file(foreign)}, units: running,
			rows:   []row{{"app@.service", OpBlocked, "", false}, {"app@1.service", OpBlocked, "", false}},
			reason: "exists and is not owned by gitgw: left alone"},
		{name: "no longer in site", cfg: Config{}, files: map[string]FileStatus{"app@.service": file(RenderUnit(v1))}, units: running,
			rows:   []row{{"app@1.service", OpDelete, "stop+disable", false}, {"app@.service", OpDelete, "remove", false}},
			reason: "no longer in site"},
	} {
		t.Run(c.name, func(t *testing.T) {
			obs := Observed{Files: c.files, Units: c.units}
			if obs.Files == nil {
				obs.Files = map[string]FileStatus{}
			}
			if obs.Units == nil {
				obs.Units = map[string]UnitState{}
			}
			acts := Diff(c.cfg, obs)
			var rows []row
			for _, a := range acts {
				rows = append(rows, row{a.ID, a.Op, a.Do, a.Drift})
			}
			if d := cmp.Diff(c.rows, rows); d != "" {
				t.Fatalf("actions (-want +got):\n%s", d)
			}
			if c.reason != "" && acts[0].Reason != c.reason {
				t.Errorf("reason %q, want %q", acts[0].Reason, c.reason)
			}
		})
	}
}
