// Package spec holds the Go types of the desired state of one node, as the
// loader decodes them from the site's node view. The types carry no
// behaviour beyond decoding and small derived views: drivers get their own
// config types, translated from these in the reconcile package, so that
// neither the data plane nor the units driver ever knows about CUE.
//
// Field names and JSON tags mirror cue/schema/site.cue one for one.
package spec

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Node is the node view: what one gateway runs, and the whole definition of
// every VRRP instance it takes part in (peers' priorities included, so that
// a plan can say who will be master).
type Node struct {
	Name     string                  `json:"name"`
	Site     SiteSettings            `json:"site"`
	Node     NodeSettings            `json:"node"`
	VRRP     map[string]VRRPInstance `json:"vrrp"`
	Services map[string]Service      `json:"services"`
	Units    map[string]UnitTemplate `json:"units"`
	// StatusKeys are the status-signing keys of every node of the site
	// that lists one (NodeSettings.StatusKey), by node: a node trusts a
	// peer's status branch, which gates its rollout, only when its head
	// commit is signed by the peer's key.
	StatusKeys map[string]string `json:"status_keys,omitempty"`
	// RealServer lists what this node serves as a DR real server: one
	// entry per VIP of every dr service that names one of its addresses as
	// a server (RealServerRoles), derived by the loader from the whole
	// site (the site does not write this field), so that a real server
	// gets its VIPs even when the service names only the gateways in
	// nodes. Empty: the node is no real server (or real_server is "off").
	RealServer []RealServerRole `json:"real_server,omitempty"`
}

// SiteSettings are site-wide settings.
type SiteSettings struct {
	Name     string      `json:"name"`
	Drift    DriftByKind `json:"drift"`
	Policies Policies    `json:"policies"`
	Rollout  Rollout     `json:"rollout"`
	Bake     Bake        `json:"bake"`
	// Userlists are the users HTTP rules authenticate (HAProxy's
	// userlist), by name: site-wide, as HAProxy's are shared by its
	// proxies.
	Userlists map[string]Userlist `json:"userlists,omitempty"`
}

// Userlist is a list of users with their password hashes, and groups.
type Userlist struct {
	Groups []string        `json:"groups,omitempty"`
	Users  map[string]User `json:"users"`
}

// User is one user of a list: a crypt(3) hash, never the password.
type User struct {
	PasswordHash string   `json:"password_hash"`
	Groups       []string `json:"groups,omitempty"`
}

// Rollout orders the application of a commit across the site
// (reconcile/rollout.go).
type Rollout struct {
	Pairs       bool       `json:"pairs"`
	PeerTimeout Duration   `json:"peer_timeout,omitempty"`
	OnTimeout   string     `json:"on_timeout"`
	Waves       []WaveSpec `json:"waves"`
	// FetchSpread is the window over which the nodes fetch a new commit
	// (reconcile/fetchspread.go); nil when the site sets none.
	FetchSpread *Duration `json:"fetch_spread,omitempty"`
}

// WaveSpec selects the nodes of one rollout wave by their labels.
type WaveSpec struct {
	Labels map[string]string `json:"labels"`
}

// Bake is the health gate after an apply (reconcile/rollback.go).
type Bake struct {
	Window            Duration `json:"window,omitempty"`
	MaxTransitions    int      `json:"max_transitions"`
	MinHealthyServers int      `json:"min_healthy_servers"`
	UnitsActive       bool     `json:"units_active"`
}

// Policies tune the guardrails and change policies (package policies).
type Policies struct {
	Disable                 []string            `json:"disable"`
	MaxServerRemovalPercent int                 `json:"max_server_removal_percent"`
	MaintenanceWindows      []MaintenanceWindow `json:"maintenance_windows"`
}

// MaintenanceWindow is a daily window in which changes may reach the nodes
// whose labels match.
type MaintenanceWindow struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
	Days     []string          `json:"days"`
	Start    string            `json:"start"`
	End      string            `json:"end"`
	Timezone string            `json:"timezone"`
}

// DriftMode says what the agent does with a difference made by hand.
type DriftMode string

// The drift modes.
const (
	DriftCorrect DriftMode = "correct"
	DriftReport  DriftMode = "report"
	DriftIgnore  DriftMode = "ignore"
)

// DriftByKind is the drift mode per resource kind.
type DriftByKind struct {
	Tuning DriftMode `json:"tuning"`
	Units  DriftMode `json:"units"`
	Proxy  DriftMode `json:"proxy"`
	VRRP   DriftMode `json:"vrrp"`
}

// NodeSettings are the gateway's own settings.
type NodeSettings struct {
	Labels     map[string]string    `json:"labels"`
	CPUs       int                  `json:"cpus,omitempty"`
	Interfaces map[string]Interface `json:"interfaces"`
	Tuning     Tuning               `json:"tuning"`
	// StatusKey is the SSH public key (authorized_keys format) the node
	// signs its status commits with (gitgw agent --status-signing-key).
	StatusKey string `json:"status_key,omitempty"`
	// ConntrackSync replicates the node's nat flows to its peer (nil: off).
	ConntrackSync *ConntrackSync `json:"conntrack_sync,omitempty"`
	// RealServer is RealServerAuto (or empty: the site leaves it out),
	// RealServerOn or RealServerOff.
	RealServer string `json:"real_server,omitempty"`
}

// The values of NodeSettings.RealServer.
const (
	// RealServerAuto: the node is a real server of every dr service that
	// names one of its addresses as a server.
	RealServerAuto = "auto"
	// RealServerOn: as auto, and a site where no dr service names the
	// node's addresses is refused (the operator said it is one).
	RealServerOn = "on"
	// RealServerOff: never; the server is set up by other means.
	RealServerOff = "off"
)

// RealServerRole is one VIP a node holds as a DR real server: the VIP of
// one bind of a dr service, and why (the service, its server whose address
// is the node's, and the node's interface holding that address).
type RealServerRole struct {
	VIP       netip.Addr `json:"vip"`
	Service   string     `json:"service"`
	Server    string     `json:"server"`
	Address   netip.Addr `json:"address"`
	Interface string     `json:"interface"`
}

// RealServerRoles derives node's roles as a DR real server from its
// settings and the site's services: for each dr service, each server whose
// address is one of the node's own interface addresses makes the node hold
// the VIP of each of the service's binds. Sorted by VIP, service, server;
// nil when ns.RealServer is "off". Addresses that do not parse are skipped
// (the schema and the guardrails report them).
func RealServerRoles(ns NodeSettings, services map[string]Service) []RealServerRole {
	if ns.RealServer == RealServerOff {
		return nil
	}
	own := map[netip.Addr]string{}
	for ifname, itf := range ns.Interfaces {
		for _, p := range itf.Addresses {
			if old, ok := own[p.Addr()]; !ok || ifname < old {
				own[p.Addr()] = ifname
			}
		}
	}
	if len(own) == 0 {
		return nil
	}
	var out []RealServerRole
	for name, s := range services {
		if s.Mode != ModeDR {
			continue
		}
		for sn, sv := range s.Servers {
			ap, err := sv.AddrPort()
			if err != nil {
				continue
			}
			ifname, ok := own[ap.Addr()]
			if !ok {
				continue
			}
			for _, b := range s.Binds {
				bp, err := netip.ParseAddrPort(b)
				// A wildcard or IPv4-mapped bind is refused by the
				// guardrails: it names no VIP to hold.
				if err != nil || bp.Addr().IsUnspecified() || bp.Addr().Is4In6() {
					continue
				}
				out = append(out, RealServerRole{VIP: bp.Addr(), Service: name, Server: sn, Address: ap.Addr(), Interface: ifname})
			}
		}
	}
	slices.SortFunc(out, func(a, b RealServerRole) int {
		if c := a.VIP.Compare(b.VIP); c != 0 {
			return c
		}
		if a.Service != b.Service {
			return strings.Compare(a.Service, b.Service)
		}
		return strings.Compare(a.Server, b.Server)
	})
	return slices.CompactFunc(out, func(a, b RealServerRole) bool {
		return a.VIP == b.VIP && a.Service == b.Service && a.Server == b.Server
	})
}

// ConntrackSync is where a node sends the conntrack entries of its nat
// services, and the port it receives its peer's on.
type ConntrackSync struct {
	Peer   netip.Addr `json:"peer"`
	Port   int        `json:"port"`
	Resync Duration   `json:"resync"`
}

// Interface is one of the node's interfaces.
type Interface struct {
	Addresses []netip.Prefix `json:"addresses"`
}

// Tuning is the node's NIC and kernel tuning.
type Tuning struct {
	RPSSockFlowEntries *int                 `json:"rps_sock_flow_entries,omitempty"`
	Interfaces         map[string]NICTuning `json:"interfaces"`
	Sysctls            map[string]Scalar    `json:"sysctls"`
	// ProxyBusyPoll is the proxy's busy-poll window (l4proxy.Config.BusyPoll).
	ProxyBusyPoll Duration `json:"proxy_busy_poll"`
}

// MaxProxyBusyPoll bounds Tuning.ProxyBusyPoll (the proxy-busy-poll
// guardrail). It is the proxy's own bound, l4proxy.MaxBusyPoll, stated here
// so that the guardrails check a site without depending on the data plane;
// a policies test holds the two equal.
const MaxProxyBusyPoll = 10 * time.Millisecond

// NICTuning is one interface's queue tuning. Empty strings and nil pointers
// mean "not managed".
type NICTuning struct {
	RPSCPUs    string `json:"rps_cpus,omitempty"`
	RPSFlowCnt *int   `json:"rps_flow_cnt,omitempty"`
	XPSCPUs    string `json:"xps_cpus,omitempty"`
	IRQCPUs    string `json:"irq_cpus,omitempty"`
}

// VRRPInstance is one virtual router as the site defines it.
type VRRPInstance struct {
	Interface       string              `json:"interface"`
	VRID            uint8               `json:"vrid"`
	Version         int                 `json:"version"`
	AdvertInterval  Duration            `json:"advert_interval"`
	Nodes           map[string]VRRPNode `json:"nodes"`
	Preempt         bool                `json:"preempt"`
	PreemptDelay    Duration            `json:"preempt_delay"`
	Auth            *VRRPAuth           `json:"auth,omitempty"`
	VIPs            []VIP               `json:"vips"`
	ExcludedVIPs    []VIP               `json:"excluded_vips"`
	TrackInterfaces []TrackInterface    `json:"track_interfaces"`
	TrackChecks     []TrackCheck        `json:"track_checks"`
	TrackServices   []TrackService      `json:"track_services"`
	GARP            GARP                `json:"garp"`
	Notify          Notify              `json:"notify"`
	Unicast         bool                `json:"unicast"`
	AllowSources    AllowSources        `json:"allow_sources,omitzero"`
	SyncGroup       string              `json:"sync_group,omitempty"`
	VMAC            bool                `json:"vmac"`
	Drift           DriftMode           `json:"drift,omitempty"`
	// PeerAddresses are every node's own addresses on the instance's
	// interface, taken from the other nodes' settings by the loader (the
	// site does not write this field): unicast adverts go to them.
	PeerAddresses map[string][]netip.Prefix `json:"peer_addresses,omitempty"`
}

// AllowSources is allow_sources: the senders a VRRP instance hears besides
// the site's own nodes, or "any" (Any) for every sender on the link. An
// address in the site is a single-address prefix here.
type AllowSources struct {
	Any   bool
	Extra []netip.Prefix
}

// UnmarshalJSON accepts "any" or a list of addresses and prefixes.
func (a *AllowSources) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s != "any" {
			return fmt.Errorf("allow_sources %q: want \"any\" or a list of addresses", s)
		}
		*a = AllowSources{Any: true}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("allow_sources: %w", err)
	}
	*a = AllowSources{Extra: make([]netip.Prefix, 0, len(list))}
	for _, x := range list {
		p, err := netip.ParsePrefix(x)
		if err != nil {
			ip, aerr := netip.ParseAddr(x)
			if aerr != nil {
				return fmt.Errorf("allow_sources: %q is neither an address nor a prefix", x)
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		a.Extra = append(a.Extra, p.Masked())
	}
	return nil
}

// MarshalJSON writes what UnmarshalJSON reads.
func (a AllowSources) MarshalJSON() ([]byte, error) {
	if a.Any {
		return json.Marshal("any")
	}
	list := make([]string, len(a.Extra))
	for i, p := range a.Extra {
		list[i] = p.String()
	}
	return json.Marshal(list)
}

// VRRPNode is one node's part in a virtual router.
type VRRPNode struct {
	Priority int `json:"priority"`
}

// VRRPAuth is VRRPv2 PASS authentication.
type VRRPAuth struct {
	Type         string `json:"type"`
	Password     string `json:"password,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
}

// VIP is a virtual address. In the site it is either "203.0.113.100/24" or
// {address, label, dev}.
type VIP struct {
	Address netip.Prefix `json:"address"`
	Label   string       `json:"label,omitempty"`
	Dev     string       `json:"dev,omitempty"`
}

// UnmarshalJSON accepts both the short string form and the struct form.
func (v *VIP) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("vip %q: %w", s, err)
		}
		*v = VIP{Address: p}
		return nil
	}
	type plain VIP
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*v = VIP(p)
	return nil
}

// TrackInterface lowers the priority by Weight, or moves the instance to
// Fault when Weight is 0, while the interface is down.
type TrackInterface struct {
	Name   string `json:"name"`
	Weight int    `json:"weight"`
}

// TrackService counts a proxy service with no healthy server as a failed check.
type TrackService struct {
	Service string `json:"service"`
	Weight  int    `json:"weight"`
}

// Check is a health check (VRRP tracking, proxy servers).
type Check struct {
	Kind         string   `json:"kind"`
	Interval     Duration `json:"interval"`
	Timeout      Duration `json:"timeout"`
	Rise         int      `json:"rise"`
	Fall         int      `json:"fall"`
	Method       string   `json:"method,omitempty"`
	Path         string   `json:"path,omitempty"`
	Host         string   `json:"host,omitempty"`
	ExpectStatus int      `json:"expect_status,omitempty"`
	ExpectString string   `json:"expect_string,omitempty"`
	Send         string   `json:"send,omitempty"`
	Expect       string   `json:"expect,omitempty"`
	Command      string   `json:"command,omitempty"`
}

// TrackCheck is a named check of a VRRP instance with its weight.
type TrackCheck struct {
	Check
	Name   string `json:"name"`
	Target string `json:"target,omitempty"`
	Weight int    `json:"weight"`
}

// GARP settings: gratuitous ARP / unsolicited NA on becoming master.
type GARP struct {
	Delay   Duration `json:"delay"`
	Repeat  int      `json:"repeat"`
	Refresh Duration `json:"refresh"`
}

// Notify hooks: commands run on transitions.
type Notify struct {
	Master string `json:"master,omitempty"`
	Backup string `json:"backup,omitempty"`
	Fault  string `json:"fault,omitempty"`
	Stop   string `json:"stop,omitempty"`
}

// Service is a TCP load-balanced service.
type Service struct {
	Nodes []string `json:"nodes"`
	// Mode is ModeProxy (the default), ModeNAT, ModeFNAT or ModeDR.
	Mode ServiceMode `json:"mode"`
	// LocalAddresses are an fnat service's source addresses towards its
	// servers (DPVS's laddrs): gateways' own addresses, each gateway
	// using those it holds.
	LocalAddresses []string `json:"local_addresses,omitempty"`
	// Protocol is "tcp" (the default) or "udp".
	Protocol string `json:"protocol"`
	// Interface is the segment's interface of a "dr" service.
	Interface string `json:"interface,omitempty"`
	// Transparent: the servers see the client's address (proxy mode).
	Transparent bool              `json:"transparent,omitempty"`
	Binds       []string          `json:"binds"`
	Balance     string            `json:"balance"`
	Persistence Duration          `json:"persistence"`
	MaxConn     int               `json:"maxconn"`
	Source      *SourceRules      `json:"source,omitempty"`
	Timeouts    Timeouts          `json:"timeouts"`
	Retries     int               `json:"retries"`
	Redispatch  bool              `json:"redispatch"`
	Servers     map[string]Server `json:"servers"`

	// TransparentAddress: the servers see this fixed address, which no
	// gateway holds (HAProxy's usesrc ADDR; proxy mode).
	TransparentAddress string `json:"transparent_address,omitempty"`
	// SourceAddress: the gateway's own address the connections to the
	// servers and their checks leave from (HAProxy's source ADDR).
	SourceAddress string `json:"source_address,omitempty"`

	// ResolveInterval re-resolves servers given by name; 0: the default.
	ResolveInterval Duration      `json:"resolve_interval,omitempty"`
	Check           *ServiceCheck `json:"check,omitempty"`
	// Unchecked states that the service has no health check on purpose
	// (the site's unchecked: true): its servers are never taken out.
	Unchecked     bool      `json:"unchecked,omitempty"`
	ProxyProtocol string    `json:"proxy_protocol"`
	TCPKeepalive  bool      `json:"tcp_keepalive"`
	Drift         DriftMode `json:"drift,omitempty"`
	// RouteBack is RouteBackRouted when a nat service's servers route
	// their replies to the gateways through a router the site does not
	// describe (the nat-route-back guardrail then trusts it); empty: the
	// servers must be on a segment where the gateways have an address.
	RouteBack string `json:"route_back,omitempty"`
	// Fwmarks are the firewall marks whose packets the service takes
	// besides its binds (kernel modes: LVS's fwmark services).
	Fwmarks []uint32 `json:"fwmarks,omitempty"`
	// HTTP serves a proxy-mode TCP service in HTTP mode (HAProxy's mode
	// http frontend); nil: TCP.
	HTTP *ServiceHTTP `json:"http,omitempty"`
	// SNI routes a proxy-mode TCP service's TLS connections, not
	// terminated, by the server name of their ClientHello; nil: none.
	SNI *ServiceSNI `json:"sni,omitempty"`
	// Cookie persists clients on a server by an HTTP cookie, for the
	// requests that reach the service in HTTP mode; nil: none.
	Cookie *ServiceCookie `json:"cookie,omitempty"`
}

// ServiceCookie is persistence by an HTTP cookie (HAProxy's cookie line;
// each server's value is Server.Cookie): Mode "insert" (the proxy sets
// it), "rewrite" (the servers set it, the proxy replaces the value) or
// "passive" (the servers set it).
type ServiceCookie struct {
	Name     string `json:"name"`
	Mode     string `json:"mode"`
	Indirect bool   `json:"indirect,omitempty"`
	NoCache  bool   `json:"nocache,omitempty"`
	HTTPOnly bool   `json:"httponly,omitempty"`
	Secure   bool   `json:"secure,omitempty"`
	Domain   string `json:"domain,omitempty"`
}

// ServiceSNI is SNI routing: rules in order, InspectDelay the wait for
// the ClientHello.
type ServiceSNI struct {
	InspectDelay Duration  `json:"inspect_delay,omitempty"`
	Rules        []SNIRule `json:"rules"`
}

// SNIRule sends connections whose server name is one of Names (Match
// "exact" or "suffix", case-insensitive) to the service Use.
type SNIRule struct {
	Names []string `json:"names"`
	Match string   `json:"match,omitempty"`
	Use   string   `json:"use"`
}

// ServiceHTTP is a service's HTTP mode: TLS termination, rules evaluated
// in order per request, a monitor URI, X-Forwarded-For. A rule's use
// names another proxy service of the site (a pool; one without binds is
// reached only by rules), so that pools keep their own servers, balance,
// checks, status and metrics with nothing new in those parts.
type ServiceHTTP struct {
	TLS        *HTTPTLS   `json:"tls,omitempty"`
	Rules      []HTTPRule `json:"rules,omitempty"`
	MonitorURI string     `json:"monitor_uri,omitempty"`
	ForwardFor bool       `json:"forward_for,omitempty"`
	// ForwardForExcept: clients of these CIDRs get no X-Forwarded-For;
	// ForwardForIfNone: nor a request that has one.
	ForwardForExcept []string `json:"forward_for_except,omitempty"`
	ForwardForIfNone bool     `json:"forward_for_if_none,omitempty"`
	// RequestHeaders and ResponseHeaders rewrite headers, in order
	// (dataplane/httpproxy/headers.go).
	RequestHeaders       []HTTPHeaderAction `json:"request_headers,omitempty"`
	ResponseHeaders      []HTTPHeaderAction `json:"response_headers,omitempty"`
	AfterResponseHeaders []HTTPHeaderAction `json:"after_response_headers,omitempty"`
}

// HTTPHeaderAction is one header rewrite: op set, add, del,
// replace-header, replace-value (on Name) or del-line, replace-line (on
// the lines Regex matches), when its conditions hold.
type HTTPHeaderAction struct {
	Op         string     `json:"op"`
	Name       string     `json:"name,omitempty"`
	Value      string     `json:"value,omitempty"`
	Regex      string     `json:"regex,omitempty"`
	IgnoreCase bool       `json:"ignore_case,omitempty"`
	When       []HTTPCond `json:"when,omitempty"`
	Pool       string     `json:"pool,omitempty"`
}

// HTTPTLS terminates TLS: PEM files of certificate and key (HAProxy's
// crt; the SNI picks), on Binds only when set.
type HTTPTLS struct {
	CertFiles []string `json:"cert_files"`
	Binds     []string `json:"binds,omitempty"`
}

// HTTPRule is conditions (all must hold) and one action.
type HTTPRule struct {
	When     []HTTPCond    `json:"when,omitempty"`
	Use      string        `json:"use,omitempty"`
	Deny     int           `json:"deny,omitempty"`
	Redirect *HTTPRedirect `json:"redirect,omitempty"`
	// Tarpit holds the request this long, then answers 500 (HAProxy's
	// tarpit, with its proxy's timeout tarpit).
	Tarpit Duration  `json:"tarpit,omitempty"`
	Auth   *HTTPAuth `json:"auth,omitempty"`
}

// HTTPAuth asks for credentials: 401 with the realm (default the
// service's name).
type HTTPAuth struct {
	Realm string `json:"realm,omitempty"`
}

// HTTPRedirect is one of scheme, location or prefix, with a code.
type HTTPRedirect struct {
	Scheme   string `json:"scheme,omitempty"`
	Location string `json:"location,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Code     int    `json:"code,omitempty"`
}

// HTTPCond compares a subject of the request with any of the values.
type HTTPCond struct {
	Subject    string   `json:"subject"`
	Header     string   `json:"header,omitempty"`
	Userlist   string   `json:"userlist,omitempty"`
	Match      string   `json:"match,omitempty"`
	Values     []string `json:"values,omitempty"`
	IgnoreCase bool     `json:"ignore_case,omitempty"`
	Not        bool     `json:"not,omitempty"`
}

// RouteBackRouted is Service.RouteBack's one value.
const RouteBackRouted = "routed"

// SourceRules are a service's rules on client source addresses: a
// non-empty Allow admits only its sources, Deny always wins over Allow;
// the limits count per source address.
type SourceRules struct {
	Allow            []string `json:"allow,omitempty"` // CIDRs or bare addresses
	Deny             []string `json:"deny,omitempty"`
	MaxConnPerSource int      `json:"max_conn_per_source,omitempty"`
	MaxRatePerSource string   `json:"max_rate_per_source,omitempty"` // "100/s"
}

// Timeouts of a service's connections.
type Timeouts struct {
	Connect   Duration `json:"connect"`
	Client    Duration `json:"client"`
	Server    Duration `json:"server"`
	Tunnel    Duration `json:"tunnel,omitempty"`
	ClientFin Duration `json:"client_fin,omitempty"`
	ServerFin Duration `json:"server_fin,omitempty"`
	Queue     Duration `json:"queue"`
}

// ServiceCheck is the health check of a service's servers.
type ServiceCheck struct {
	Check
	FastInterval     Duration `json:"fast_interval,omitempty"`
	DownInterval     Duration `json:"down_interval,omitempty"`
	ShutdownSessions bool     `json:"shutdown_sessions"`
	// Port and Address override the server's for checks.
	Port           int               `json:"port,omitempty"`
	Address        string            `json:"address,omitempty"`
	TLS            *CheckTLS         `json:"tls,omitempty"`
	MaxRead        int               `json:"max_read,omitempty"`
	Headers        map[string]string `json:"headers,omitempty"`
	ExpectStatuses []StatusRange     `json:"expect_statuses,omitempty"`
	ExpectRegex    string            `json:"expect_regex,omitempty"`
	Requests       []CheckRequest    `json:"requests,omitempty"`
	Steps          []CheckStep       `json:"steps,omitempty"`
	Domain         string            `json:"domain,omitempty"`
	User           string            `json:"user,omitempty"`
	Database       string            `json:"database,omitempty"`
	Role           string            `json:"role,omitempty"`
}

// CheckTLS is a check over TLS.
type CheckTLS struct {
	SNI      string `json:"sni,omitempty"`
	Verify   string `json:"verify"`
	CAFile   string `json:"ca_file,omitempty"`
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
}

// CheckRequest is one of the requests of an http check that must all pass.
type CheckRequest struct {
	Method         string            `json:"method"`
	Path           string            `json:"path"`
	Host           string            `json:"host,omitempty"`
	Headers        map[string]string `json:"headers,omitempty"`
	ExpectStatus   int               `json:"expect_status,omitempty"`
	ExpectStatuses []StatusRange     `json:"expect_statuses,omitempty"`
	ExpectString   string            `json:"expect_string,omitempty"`
	ExpectRegex    string            `json:"expect_regex,omitempty"`
}

// CheckStep is one step of a tcp-check; exactly one field is set. Hex
// fields carry binary data as hex digits.
type CheckStep struct {
	Connect     *CheckConnect `json:"connect,omitempty"`
	Send        *string       `json:"send,omitempty"`
	SendHex     string        `json:"send_hex,omitempty"`
	Expect      *string       `json:"expect,omitempty"`
	ExpectHex   string        `json:"expect_hex,omitempty"`
	ExpectRegex string        `json:"expect_regex,omitempty"`
}

// CheckConnect is a tcp-check step that opens a new connection.
type CheckConnect struct {
	Port int  `json:"port,omitempty"`
	TLS  bool `json:"tls"`
}

// StatusRange is an HTTP status ("200") or an inclusive range ("200-299");
// the site may write a single status as a number.
type StatusRange string

// UnmarshalJSON accepts a JSON string or number.
func (s *StatusRange) UnmarshalJSON(b []byte) error {
	var v Scalar
	if err := v.UnmarshalJSON(b); err != nil {
		return fmt.Errorf("status %s: want a number or a range", b)
	}
	*s = StatusRange(v)
	return nil
}

// Server is one backend of a service.
type Server struct {
	// Address is "IP:port" or "name:port" (a host name, resolved), or in
	// a kernel-mode service a bare IP: the client's port is kept.
	Address  string `json:"address"`
	Weight   int    `json:"weight"`
	MaxConn  int    `json:"maxconn"`
	Backup   bool   `json:"backup"`
	Drain    bool   `json:"drain"`
	Disabled bool   `json:"disabled"`
	// CheckPort overrides the service check's port for this server.
	CheckPort int `json:"check_port,omitempty"`
	// CheckAddress overrides the service check's address for this server.
	CheckAddress string `json:"check_address,omitempty"`
	// CheckTargets ("IP:port"), instead, are where this server is
	// checked: it is up only while the check passes at every one.
	CheckTargets []string `json:"check_targets,omitempty"`
	// Unchecked: the service's check never takes this server out.
	Unchecked bool `json:"unchecked,omitempty"`
	// TLS wraps the proxy's connections to this server in TLS.
	TLS *ServerTLS `json:"tls,omitempty"`
	// Cookie is the service cookie's value naming this server; empty:
	// no client is persisted on it.
	Cookie string `json:"cookie,omitempty"`
	// SourceAddress replaces the service's for this server.
	SourceAddress string `json:"source_address,omitempty"`
	// Via is the proxy the server is reached through; nil: directly.
	Via *ServerVia `json:"via,omitempty"`
}

// ServerVia is a server reached through a SOCKS4 proxy (HAProxy's
// `socks4`), its checks too when Check holds (`check-via-socks4`).
type ServerVia struct {
	SOCKS4 string `json:"socks4"`
	Check  bool   `json:"check"`
}

// ServerTLS is TLS from the proxy to a server (HAProxy's server `ssl`):
// CheckTLS's fields, the name to verify when it is not the SNI, ALPN,
// and whether sessions are resumed.
type ServerTLS struct {
	CheckTLS
	VerifyHost   string   `json:"verify_host,omitempty"`
	ALPN         []string `json:"alpn,omitempty"`
	SessionReuse bool     `json:"session_reuse"`
}

// AddrPort reads an address given as "IP:port", or as a bare IP (port 0:
// the client's destination port is kept); an error for a host name.
func (sv Server) AddrPort() (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(sv.Address); err == nil {
		return netip.AddrPortFrom(a, 0), nil
	}
	return netip.ParseAddrPort(sv.Address)
}

// HeldLocalAddresses are the local addresses of an fnat service that a
// node holds (among the addresses its interfaces list), in the service's
// order: the sources that node gives the service's flows. A local address
// that does not parse is left out (the guardrails report it).
func HeldLocalAddresses(ns NodeSettings, s Service) []netip.Addr {
	var out []netip.Addr
	for _, l := range s.LocalAddresses {
		a, err := netip.ParseAddr(l)
		if err != nil {
			continue
		}
		for _, ifc := range ns.Interfaces {
			if slices.ContainsFunc(ifc.Addresses, func(p netip.Prefix) bool { return p.Addr() == a }) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// ServiceMode is how a service is carried.
type ServiceMode string

// The service modes.
const (
	// ModeProxy: gitgw's userspace L4 proxy.
	ModeProxy ServiceMode = "proxy"
	// ModeNAT: kernel forwarding with destination NAT (LVS NAT).
	ModeNAT ServiceMode = "nat"
	// ModeDR: kernel forwarding by direct routing (LVS DR).
	ModeDR ServiceMode = "dr"
	// ModeFNAT: kernel forwarding with destination and source NAT
	// (DPVS's full NAT), the source one of LocalAddresses.
	ModeFNAT ServiceMode = "fnat"
)

// Kernel reports whether the service is forwarded by the kernel (nat,
// fnat or dr) rather than by the proxy.
func (s Service) Kernel() bool { return s.Mode == ModeNAT || s.Mode == ModeFNAT || s.Mode == ModeDR }

// Router says whether the service is HTTP rules without servers of its
// own (HAProxy's frontend without default_backend): each request goes
// where a rule sends it, and one no rule takes is answered 503.
func (s Service) Router() bool {
	return len(s.Servers) == 0 && !s.Kernel() && s.HTTP != nil && len(s.HTTP.Rules) > 0
}

// UnitTemplate is a systemd template unit and its instance sets.
type UnitTemplate struct {
	Description      string            `json:"description"`
	After            []string          `json:"after"`
	Wants            []string          `json:"wants"`
	Requires         []string          `json:"requires"`
	Type             string            `json:"type"`
	ExecStart        string            `json:"exec_start"`
	ExecReload       string            `json:"exec_reload,omitempty"`
	User             string            `json:"user,omitempty"`
	Group            string            `json:"group,omitempty"`
	WorkingDirectory string            `json:"working_directory,omitempty"`
	Environment      map[string]string `json:"environment"`
	EnvironmentFiles []string          `json:"environment_files"`
	Restart          string            `json:"restart"`
	RestartSec       Duration          `json:"restart_sec"`
	LimitNOFILE      *int              `json:"limit_nofile,omitempty"`
	LimitNPROC       *int              `json:"limit_nproc,omitempty"`
	CPUQuota         string            `json:"cpu_quota,omitempty"`
	MemoryMax        string            `json:"memory_max,omitempty"`
	Slice            string            `json:"slice,omitempty"`
	Hardening        map[string]string `json:"hardening"`
	Extra            UnitExtra         `json:"extra"`
	WantedBy         []string          `json:"wanted_by"`
	Instances        []InstanceSet     `json:"instances"`
	RollTimeout      Duration          `json:"roll_timeout"`
	Drift            DriftMode         `json:"drift,omitempty"`
}

// UnitExtra holds raw "Key=Value" directives per section.
type UnitExtra struct {
	Unit    []string `json:"unit"`
	Service []string `json:"service"`
	Install []string `json:"install"`
}

// InstanceSet is a list of instances and/or an inclusive port range, for a
// set of nodes (empty: every node).
type InstanceSet struct {
	Nodes []string   `json:"nodes"`
	List  []string   `json:"list"`
	Ports *PortRange `json:"ports,omitempty"`
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// InstancesFor expands the template's instance sets that apply to node
// into a sorted list without duplicates.
func (u UnitTemplate) InstancesFor(node string) []string {
	var out []string
	for _, s := range u.Instances {
		if len(s.Nodes) > 0 && !slices.Contains(s.Nodes, node) {
			continue
		}
		out = append(out, s.List...)
		if s.Ports != nil {
			for p := s.Ports.From; p <= s.Ports.To; p++ {
				out = append(out, strconv.Itoa(p))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Duration is a time.Duration written as a Go duration string in the site.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String renders the duration as Go does ("100ms", "1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText renders the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Scalar is a sysctl value: the site may write it as a number or a string.
type Scalar string

// UnmarshalJSON accepts a JSON string or number.
func (s *Scalar) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = Scalar(str)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("sysctl value %s: want a string or a number", b)
	}
	*s = Scalar(n.String())
	return nil
}

// Label is a map key as an element of a CUE path ("services.web",
// `nodes."gw-1"`): quoted unless it is a plain identifier. The loader
// positions errors by such paths; policies and checks build them.
func Label(s string) string {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return strconv.Quote(s)
		}
	}
	return s
}
