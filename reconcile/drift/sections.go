package drift

import (
	"encoding/json"

	"github.com/gitgw/gitgw/reconcile/plan"
)

// VRRPSection is the shape of Status.Sections["vrrp"] that the fleet view
// and STATUS.md read: the node's role in each virtual router.
type VRRPSection struct {
	Instances []VRRPInstance `json:"instances"`
}

// VRRPInstance is one virtual router as the node sees it.
type VRRPInstance struct {
	Name      string `json:"name"`
	VRID      int    `json:"vrid"`
	Interface string `json:"interface,omitempty"`
	// State is "MASTER", "BACKUP", "FAULT" or "INIT".
	State    string `json:"state"`
	Priority int    `json:"priority,omitempty"`
	// Family is the address family of the instance's VIPs ("IPv4",
	// "IPv6"); Segments the subnets of its interface on this node, as the
	// site declares them (the vrid-unique guardrail's segments). Two
	// instances share a virtual router only when they share a segment, a
	// family and the VRID: the fleet view flags a split brain per router,
	// not per VRID, since two segments may reuse one.
	Family   string   `json:"family,omitempty"`
	Segments []string `json:"segments,omitempty"`
}

// ProxySection is the shape of Status.Sections["proxy"]: server health.
type ProxySection struct {
	Services []ProxyService `json:"services"`
}

// ProxyService is one service and its servers.
type ProxyService struct {
	Name    string        `json:"name"`
	Servers []ProxyServer `json:"servers"`
}

// ProxyServer is one backend; Health is "up", "down", "drain",
// "disabled" or "unchecked" (no health check: taking traffic, unknown
// whether it answers).
type ProxyServer struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	Health  string `json:"health"`
}

// VRRPOf decodes the VRRP section, whatever Go type a driver filled it
// with (or a map, once read back from JSON).
func VRRPOf(st Status) (VRRPSection, bool) {
	var v VRRPSection
	return v, section(st, plan.FamilyVRRP.String(), &v)
}

// ProxyOf decodes the proxy section.
func ProxyOf(st Status) (ProxySection, bool) {
	var p ProxySection
	return p, section(st, plan.FamilyProxy.String(), &p)
}

func section(st Status, name string, into any) bool {
	raw, ok := st.Sections[name]
	if !ok || raw == nil {
		return false
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return false
	}
	return json.Unmarshal(b, into) == nil
}
