package vrrp

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Config is every VRRP instance of one node. The zero value (no instances)
// is valid: Set with it stops everything.
type Config struct {
	Instances  []Instance
	SyncGroups []SyncGroup
}

// Instance is one virtual router: a VRID on one interface for one address
// family.
type Instance struct {
	Name      string
	Interface string
	VRID      uint8
	// Version is 2 or 3 (0 means 3). IPv6 instances are always v3.
	Version uint8
	// Interval is the advertisement interval: whole seconds in v2, 10 ms
	// steps from 10 ms in v3. 0 means 1 s.
	Interval time.Duration
	// Priority is the base priority, 1..255 (255: address owner).
	Priority uint8
	// NoPreempt keeps a lower-priority master in place (keepalived's
	// nopreempt); PreemptDelay delays preemption after start or after
	// first hearing a lower-priority master.
	NoPreempt    bool
	PreemptDelay time.Duration
	// AuthPass is the VRRPv2 PASS password (≤ 8 bytes); v2 only.
	AuthPass string
	// VIPs are advertised and installed while master; the list must be
	// identical on every router of the VRID (keepalived drops adverts
	// otherwise). ExcludedVIPs follow mastership but are not advertised
	// (other family, or more than fit).
	VIPs         []VIP
	ExcludedVIPs []VIP
	// UnicastSrc and UnicastPeers replace multicast: both or neither.
	UnicastSrc   netip.Addr
	UnicastPeers []netip.Addr
	// AllowSources, when not empty, are the only senders whose adverts
	// are heard besides the unicast peers (an address is a /32 or /128).
	// The site fills it with its nodes' addresses on the segment: without
	// it any host on the LAN takes mastership by advertising priority 255.
	// Adverts from anyone else are dropped and counted (DropSource). Empty
	// (and no unicast peers): every sender on the link is heard, as the
	// RFC has it.
	AllowSources []netip.Prefix
	// ChecksumMessageOnly sends the v3/IPv4 checksum without the
	// pseudo-header (RFC 9568 / Cisco form). Both forms are accepted.
	ChecksumMessageOnly bool
	// VMAC holds the VIPs on a macvlan with the virtual router MAC
	// 00:00:5e:00:01:VRID (IPv6: 00:00:5e:00:02:VRID), so that neighbours
	// never need to learn a new MAC on failover.
	VMAC            bool
	TrackInterfaces []TrackInterface
	TrackChecks     []Check
	GARP            GARP
	Notify          Notify
	// Drift says what is done with a VIP changed by hand: put back or
	// taken away (the zero value), only reported, or ignored. The site's
	// drift mode for vrrp; a transition still installs or removes every
	// VIP, as that is the protocol, not a repair.
	Drift DriftMode
}

// DriftMode is what the engine does about a VIP changed behind its back.
type DriftMode string

const (
	// DriftCorrect puts a VIP removed while master back and removes one
	// present while not master, and reports it (Action "restored",
	// "removed").
	DriftCorrect DriftMode = ""
	// DriftReport leaves the VIP as it was found and reports it (Action
	// "missing", "extra").
	DriftReport DriftMode = "report"
	// DriftIgnore neither repairs nor reports.
	DriftIgnore DriftMode = "ignore"
)

// VIP is one virtual address: a prefix (address and prefix length) with an
// optional IPv4 label and netlink scope.
type VIP struct {
	Prefix netip.Prefix
	Label  string
	Scope  int
}

// TrackInterface ties an interface's link state to the instance: down with
// weight 0 means Fault; otherwise a negative weight is added while it is
// down, a positive one while it is up (keepalived's arithmetic).
type TrackInterface struct {
	Name   string
	Weight int
}

// CheckKind names what a Check does.
type CheckKind string

// The kinds of checks.
const (
	CheckTCP     CheckKind = "tcp"     // connect to Target (host:port)
	CheckHTTP    CheckKind = "http"    // GET Target (URL), expect ExpectStatus
	CheckCommand CheckKind = "command" // run Command, expect exit 0
	CheckICMP    CheckKind = "icmp"    // Target (an address) answers an echo request
	CheckService CheckKind = "service" // proxy service Target has a healthy server
	// CheckTCPExpect connects to Target, writes Send, and expects Expect
	// in the first bytes the peer sends back (keepalived's misc checks on
	// line protocols).
	CheckTCPExpect CheckKind = "tcp-expect"
)

// Check is an in-process health check with hysteresis: Fall consecutive
// failures make it failing, Rise consecutive successes healthy again. A
// timeout is a failure. Weight as for TrackInterface.
type Check struct {
	Name    string
	Kind    CheckKind
	Target  string
	Command []string
	// Method (http; default GET) and Host (http: the Host header, when the
	// target's authority is an address) shape the request.
	Method, Host string
	ExpectStatus int
	// ExpectString (http) must occur in the first maxCheckBody bytes of
	// the body; Expect (tcp-expect) in the first maxCheckBody bytes the
	// peer sends after Send.
	ExpectString string
	Send, Expect string
	Interval     time.Duration
	Timeout      time.Duration
	Rise, Fall   int
	Weight       int
}

// GARP paces the announcements made on becoming master: Repeat
// announcements Spacing apart at once, the same again after Delay (0: no
// second burst), and every Refresh while master (0: never).
type GARP struct {
	Repeat  int
	Spacing time.Duration
	Delay   time.Duration
	Refresh time.Duration
}

// Notify holds the commands (argv) run on transitions, with GITGW_INSTANCE,
// GITGW_STATE, GITGW_PRIORITY and GITGW_VIPS in their environment. They run
// in the background, one at a time per instance, never blocking the
// protocol.
type Notify struct {
	Master, Backup, Fault, Stop []string
	Timeout                     time.Duration
}

// SyncGroup is a set of instances that change state together.
type SyncGroup struct {
	Name      string
	Instances []string
}

// withDefaults fills zero fields.
func (in Instance) withDefaults() Instance {
	if in.Version == 0 {
		in.Version = 3
	}
	if in.Interval == 0 {
		in.Interval = time.Second
	}
	if in.GARP.Repeat == 0 {
		in.GARP.Repeat = 3
	}
	if in.GARP.Spacing == 0 {
		in.GARP.Spacing = 20 * time.Millisecond
	}
	if in.Notify.Timeout == 0 {
		in.Notify.Timeout = 30 * time.Second
	}
	for i := range in.TrackChecks {
		c := &in.TrackChecks[i]
		if c.Interval == 0 {
			c.Interval = time.Second
		}
		if c.Timeout == 0 || c.Timeout > c.Interval {
			c.Timeout = c.Interval
		}
		if c.Rise == 0 {
			c.Rise = 1
		}
		if c.Fall == 0 {
			c.Fall = 1
		}
		if c.Kind == CheckHTTP && c.ExpectStatus == 0 {
			c.ExpectStatus = 200
		}
	}
	return in
}

// SourceAllowed reports whether an advert from src may be heard: src is a
// unicast peer or inside AllowSources, or neither list is set. It is the
// first receive check, before the packet is even decoded.
func (in Instance) SourceAllowed(src netip.Addr) bool {
	if len(in.UnicastPeers) == 0 && len(in.AllowSources) == 0 {
		return true
	}
	src = src.WithZone("").Unmap()
	if slices.Contains(in.UnicastPeers, src) {
		return true
	}
	for _, p := range in.AllowSources {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// IPv6 reports whether the instance speaks VRRP over IPv6 (its advertised
// addresses are IPv6).
func (in Instance) IPv6() bool { return len(in.VIPs) > 0 && in.VIPs[0].Prefix.Addr().Is6() }

// Validate checks the configuration and returns every problem found.
func (c Config) Validate() error {
	var errs []error
	names := map[string]bool{}
	vrids := map[string]string{}
	for _, raw := range c.Instances {
		in := raw.withDefaults()
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("vrrp: instance %q: %s", in.Name, fmt.Sprintf(format, args...)))
		}
		if in.Name == "" {
			bad("no name")
		}
		if names[in.Name] {
			bad("duplicate name")
		}
		names[in.Name] = true
		if in.Interface == "" {
			bad("no interface")
		}
		if in.VRID == 0 {
			bad("VRID must be 1..255")
		}
		key := fmt.Sprintf("%s/%d/%v", in.Interface, in.VRID, in.IPv6())
		if other, ok := vrids[key]; ok {
			bad("VRID %d on %s already used by %q", in.VRID, in.Interface, other)
		}
		vrids[key] = in.Name
		if in.Priority == 0 {
			bad("priority must be 1..255")
		}
		switch in.Version {
		case 2:
			if in.Interval%time.Second != 0 || in.Interval > 255*time.Second {
				bad("v2 interval %v must be whole seconds ≤ 255s", in.Interval)
			}
			if in.IPv6() {
				bad("VRRPv2 is IPv4 only")
			}
			if len(in.AuthPass) > 8 {
				bad("auth password longer than 8 bytes")
			}
		case 3:
			if in.Interval < 10*time.Millisecond || in.Interval > 40950*time.Millisecond || in.Interval%(10*time.Millisecond) != 0 {
				bad("v3 interval %v must be a multiple of 10ms in 10ms..40.95s", in.Interval)
			}
			if in.AuthPass != "" {
				bad("authentication exists only in VRRPv2")
			}
		default:
			bad("version %d unsupported (2 or 3)", in.Version)
		}
		if len(in.VIPs) == 0 {
			bad("no VIPs to advertise")
		}
		if len(in.VIPs) > 255 {
			bad("%d advertised VIPs, at most 255 (use excluded VIPs)", len(in.VIPs))
		}
		v6 := in.IPv6()
		for _, v := range append(slices.Clone(in.VIPs), in.ExcludedVIPs...) {
			if !v.Prefix.IsValid() {
				bad("invalid VIP %v", v.Prefix)
			}
			if v.Label != "" && !strings.HasPrefix(v.Label, in.Interface) {
				bad("label %q of %v must start with the interface name %q", v.Label, v.Prefix, in.Interface)
			}
		}
		for _, v := range in.VIPs {
			if v.Prefix.Addr().Is6() != v6 {
				bad("advertised VIPs mix address families (%v); put the other family in excluded VIPs", v.Prefix)
			}
		}
		if in.UnicastSrc.IsValid() != (len(in.UnicastPeers) > 0) {
			bad("half-unicast configuration: unicast_src and unicast_peers go together")
		}
		for _, p := range in.UnicastPeers {
			if p.Is6() != v6 || p == in.UnicastSrc {
				bad("unicast peer %v: wrong family or our own source", p)
			}
		}
		if in.UnicastSrc.IsValid() && in.UnicastSrc.Is6() != v6 {
			bad("unicast source %v of the wrong family", in.UnicastSrc)
		}
		for _, p := range in.AllowSources {
			if !p.IsValid() || p.Addr().Is6() != v6 || p.Addr().Is4In6() {
				bad("allowed source %v: invalid or of the wrong family", p)
			}
		}
		for _, ch := range in.TrackChecks {
			switch ch.Kind {
			case CheckTCP, CheckHTTP, CheckService, CheckICMP, CheckTCPExpect:
				if ch.Target == "" {
					bad("check %q: no target", ch.Name)
				}
				if ch.Kind == CheckTCPExpect && ch.Expect == "" {
					bad("check %q: tcp-expect without expect", ch.Name)
				}
				switch ch.Method {
				case "", http.MethodGet, http.MethodHead, http.MethodPost, http.MethodOptions:
				default:
					bad("check %q: method %q unsupported (GET, HEAD, POST, OPTIONS)", ch.Name, ch.Method)
				}
			case CheckCommand:
				if len(ch.Command) == 0 {
					bad("check %q: no command", ch.Name)
				}
			default:
				bad("check %q: kind %q unsupported (tcp, http, command, icmp, service, tcp-expect)", ch.Name, ch.Kind)
			}
			if ch.Name == "" {
				bad("check without a name")
			}
		}
	}
	inGroup := map[string]string{}
	for _, g := range c.SyncGroups {
		for _, n := range g.Instances {
			if !names[n] {
				errs = append(errs, fmt.Errorf("vrrp: sync group %q: unknown instance %q", g.Name, n))
			}
			if o, ok := inGroup[n]; ok {
				errs = append(errs, fmt.Errorf("vrrp: instance %q in sync groups %q and %q", n, o, g.Name))
			}
			inGroup[n] = g.Name
		}
	}
	return errors.Join(errs...)
}
