package loader

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
)

// checkView runs the checks that CUE cannot express cheaply (references
// between maps, interval rules per VRRP version) over decoded values. Each
// error names a field path; the loader then finds its position.
func checkView(n *spec.Node, nodes []string) Errors {
	var errs Errors
	add := func(path, format string, args ...any) {
		errs = append(errs, Error{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	known := func(node string) bool { return slices.Contains(nodes, node) }
	for _, name := range slices.Sorted(maps.Keys(n.VRRP)) {
		in := n.VRRP[name]
		base := "vrrp." + spec.Label(name)
		for _, node := range slices.Sorted(maps.Keys(in.Nodes)) {
			if !known(node) {
				add(base+".nodes."+spec.Label(node), "node %q is not declared in nodes", node)
			}
		}
		iv := in.AdvertInterval.D()
		switch in.Version {
		case 3:
			// VRRPv3 carries the interval in centiseconds in 12 bits.
			if iv < 10*time.Millisecond || iv > 40950*time.Millisecond || iv%(10*time.Millisecond) != 0 {
				add(base+".advert_interval", "VRRPv3 advert interval must be a multiple of 10ms between 10ms and 40.95s, got %s", iv)
			}
		case 2:
			if iv < time.Second || iv > 255*time.Second || iv%time.Second != 0 {
				add(base+".advert_interval", "VRRPv2 advert interval must be whole seconds between 1s and 255s, got %s", iv)
			}
		}
		if in.Auth != nil && in.Version != 2 {
			add(base+".auth", "authentication exists only in VRRPv2 (RFC 5798 removed it); set version: 2 or remove auth")
		}
		if in.Auth != nil && in.Auth.Password == "" && in.Auth.PasswordFile == "" {
			add(base+".auth", "PASS authentication needs password or password_file")
		}
		for i, ts := range in.TrackServices {
			if _, ok := n.Services[ts.Service]; !ok && n.Services != nil {
				add(base+".track_services."+strconv.Itoa(i)+".service", "service %q is not defined for this node", ts.Service)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(n.Services)) {
		s := n.Services[name]
		for i, node := range s.Nodes {
			if !known(node) {
				add("services."+spec.Label(name)+".nodes."+strconv.Itoa(i), "node %q is not declared in nodes", node)
			}
		}
		if len(s.Servers) == 0 && !s.Router() {
			add("services."+spec.Label(name)+".servers", "a service needs at least one server (or, in proxy mode, http rules that send each request elsewhere: a request none takes is answered 503)")
		}
	}
	errs = append(errs, checkUserlists(n)...)
	for _, name := range slices.Sorted(maps.Keys(n.Units)) {
		for i, set := range n.Units[name].Instances {
			for j, node := range set.Nodes {
				if !known(node) {
					add(fmt.Sprintf("units.%s.instances.%d.nodes.%d", spec.Label(name), i, j), "node %q is not declared in nodes", node)
				}
			}
		}
	}
	return errs
}
