package spec

// Site is a whole site as the schema defines it, for the checks that look
// across nodes (`gitgw validate`). Agents decode only their node's view.
type Site struct {
	Site     SiteSettings            `json:"site"`
	Nodes    map[string]NodeSettings `json:"nodes"`
	VRRP     map[string]VRRPInstance `json:"vrrp"`
	Services map[string]Service      `json:"services"`
	Units    map[string]UnitTemplate `json:"units"`
}
