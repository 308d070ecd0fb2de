package plan

// Family is a resource family: the resources one driver owns. It is the
// Driver of a Change, the name of a reconcile driver and the key of a
// status section.
type Family string

// The families, in apply order (see Families).
const (
	FamilyTuning Family = "tuning"
	// FamilyRealServer: this node as a DR real server (VIPs on lo, ARP
	// knobs), before the units: a server's instance may bind the VIP.
	FamilyRealServer Family = "realserver"
	FamilyUnits      Family = "units"
	FamilyProxy      Family = "proxy"
	// FamilyKernLB: services forwarded by the kernel (mode nat or dr).
	FamilyKernLB Family = "kernlb"
	FamilyVRRP   Family = "vrrp"
)

// Families is every family in apply order on the way up: tuning first,
// VRRP last, so that VIPs move only once everything behind them is ready.
// DriverRank and the pending list derive from it; a new driver adds its
// family here.
var Families = []Family{FamilyTuning, FamilyRealServer, FamilyUnits, FamilyProxy, FamilyKernLB, FamilyVRRP}

// String returns the family's name.
func (f Family) String() string { return string(f) }

// Resource kinds: the Kind of a Change inside its family.
const (
	// tuning (dataplane/nic spells the per-knob kinds).
	KindSysctl             = "sysctl"
	KindRPSSockFlowEntries = "rps_sock_flow_entries"
	KindNIC                = "nic"
	// KindReceiveSpread is no resource: the node's NET_RX softirq spread
	// (and what could not be observed), shown as a row of its own when no
	// interface is tuned.
	KindReceiveSpread = "receive_spread"
	// realserver.
	KindRealServerVIP    = "real_server_vip"
	KindRealServerSysctl = "real_server_sysctl"
	// units (units.KindFile, units.KindInstance).
	KindUnitFile     = "unit_file"
	KindUnitInstance = "unit_instance"
	// proxy.
	KindProxyPool    = "proxy_pool"
	KindProxyService = "proxy_service"
	KindProxyBind    = "proxy_bind"
	KindProxyServer  = "proxy_server"
	// kernlb.
	KindKernelService = "kernel_service"
	KindKernelServer  = "kernel_server"
	KindKernelTable   = "kernel_table"
	// vrrp.
	KindVRRPInstance = "vrrp_instance"
	KindVIP          = "vip"
)

// Event kinds: what a driver noticed on its own (reconcile.Event, the
// events of status.json and the commit messages they make).
const (
	EventDrift      = "drift"      // changed outside gitgw
	EventTransition = "transition" // a VRRP state change
	EventHealth     = "health"     // a server's health changed
)
