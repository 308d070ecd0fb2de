package policies

import (
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
)

// TestPointAtChange: a port clash is reported at the field the change
// touched, whichever of the two that is.
func TestPointAtChange(t *testing.T) {
	bindOn8080 := func(in *Input) {
		setService(in, "web", func(s *spec.Service) { s.Binds = append(s.Binds, "0.0.0.0:8080") })
	}
	withBind := edit(bindOn8080)
	for _, c := range []struct {
		name          string
		prev, next    Input
		path, related string
	}{
		{"a new bind takes a unit's port: at the bind", labSite(), withBind, "services.web.binds.1", "units.app.instances"},
		{"a new unit instance takes a bind's port: at the unit", edit(func(in *Input) {
			bindOn8080(in)
			in.Units = map[string]spec.UnitTemplate{"app": {ExecStart: "/bin/app %i", Instances: []spec.InstanceSet{{List: []string{"8081"}}}}}
		}), withBind, "units.app.instances", "services.web.binds.1"},
		{"nothing changed: where the rule puts it", withBind, withBind, "units.app.instances", "services.web.binds.1"},
		{"a second bind on a taken address: at the new one", labSite(), edit(func(in *Input) {
			in.Services["api"] = spec.Service{Binds: []string{"203.0.113.100:80"}, Servers: in.Services["web"].Servers, Check: in.Services["web"].Check}
		}), "services.api.binds.0", "services.web.binds.0"},
	} {
		var clash []Violation
		for _, v := range PointAtChange(Check(c.next), c.prev, c.next) {
			if v.Policy == "port-clash" {
				clash = append(clash, v)
			}
		}
		// One finding per node of the site (gw1, gw2), each placed alike.
		if len(clash) != 2 {
			t.Errorf("%s: port-clash findings %v, want one per node", c.name, clash)
		}
		for _, v := range clash {
			if v.Path != c.path || v.Related != c.related {
				t.Errorf("%s: port clash at %s (the other %s), want at %s (the other %s)", c.name, v.Path, v.Related, c.path, c.related)
			}
		}
	}
}
