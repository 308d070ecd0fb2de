package l4proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/gitgw/gitgw/dataplane/healthcheck"
	"github.com/gitgw/gitgw/dataplane/httpproxy"
)

// Config is the whole desired state of the pool: every service it proxies.
type Config struct {
	Services []Service `json:"services"`
	// BusyPoll keeps an event loop that has just handled traffic polling
	// its sockets for this long before it sleeps, yielding the CPU to any
	// other runnable thread and goroutine between polls. A backend's reply
	// that arrives within the window is forwarded without waiting for an
	// idle CPU to wake up (the bulk of the latency a proxy adds on a
	// virtual machine: 115 µs of 130 on the benchmark box), at the price of
	// CPU time that would otherwise be idle while traffic flows. 0: off;
	// at most 10ms.
	BusyPoll time.Duration `json:"busy_poll,omitempty"`
}

// MaxBusyPoll bounds Config.BusyPoll.
const MaxBusyPoll = 10 * time.Millisecond

// Balance names a balancing algorithm.
type Balance string

// The balancing algorithms (HAProxy's names).
const (
	// RoundRobin is smooth weighted round robin (nginx's algorithm).
	RoundRobin Balance = "roundrobin"
	// LeastConn picks the server with the fewest connections per weight.
	LeastConn Balance = "leastconn"
	// Source hashes the client address on a consistent-hash ring, so that a
	// server change moves only that server's share of clients.
	Source Balance = "source"
	// First fills servers in configuration order up to their maxconn.
	First Balance = "first"
)

// Protocol is a service's transport.
type Protocol string

// The protocols.
const (
	ProtoTCP Protocol = "tcp"
	ProtoUDP Protocol = "udp"
)

// Service is one frontend (its binds) with its backend (servers, checks).
type Service struct {
	Name string `json:"name"`
	// Protocol is ProtoTCP (the default) or ProtoUDP (udp.go): flows of
	// datagrams by client address and port, each a session that ends after
	// Timeouts.Client without traffic or after UDPReplies replies.
	Protocol Protocol `json:"protocol,omitempty"`
	// UDPReplies ends a UDP session after that many replies from the
	// server (nginx's proxy_responses: 1 for DNS); 0: only idleness ends it.
	UDPReplies int `json:"udp_replies,omitempty"`
	// Transparent connects to the servers from the client's address
	// (transparent.go: IP_TRANSPARENT, and the policy routing the servers'
	// replies need on this node), for servers that must see the client
	// and cannot parse the PROXY protocol. TCP only.
	Transparent bool `json:"transparent,omitempty"`
	// TransparentAddr, when valid, connects to the servers from this fixed
	// address that the node does not hold (HAProxy's `usesrc ADDR`, the
	// cttproxy/tproxy "foreign" source): IP_TRANSPARENT and the same
	// policy routing as Transparent, for servers that accept only that
	// address (a firewall, an ACL). The servers must route their replies
	// for it back through this node. Checks do not use it: they connect
	// from SourceAddr, as HAProxy's. TCP only; not with Transparent.
	TransparentAddr netip.Addr `json:"transparent_addr,omitzero"`
	// SourceAddr, when valid, is the node's own address the connections
	// to the servers and their checks leave from (HAProxy's `source
	// ADDR`), instead of the one the routing table picks: for servers that
	// accept only that address. A server's own SourceAddr wins. The
	// socket gets IP_FREEBIND, so that a VIP taken as source binds before
	// the node holds it (its connections only work once it does). With
	// Transparent or TransparentAddr only the checks use it. TCP only.
	SourceAddr netip.Addr `json:"source_addr,omitzero"`
	// Binds are the addresses listened on; the address need not be present
	// on the node (IP_FREEBIND): a VIP that arrives later works.
	Binds   []netip.AddrPort `json:"binds"`
	Balance Balance          `json:"balance,omitempty"` // default roundrobin
	// Persistence, when positive, keeps a client address on the server it
	// last used for that long after its last connection (LVS `persistent`).
	Persistence time.Duration `json:"persistence,omitempty"`
	// MaxConn caps concurrent connections of the service; further clients
	// wait in the kernel's accept backlog. 0 means unlimited.
	MaxConn  int      `json:"maxconn,omitempty"`
	Timeouts Timeouts `json:"timeouts"`
	// Retries is how many more connect attempts follow a failed one
	// (default 3; negative: none). With Redispatch, each retry picks another
	// server; without, retries stay on the same server.
	Retries    int      `json:"retries,omitempty"`
	Redispatch bool     `json:"redispatch,omitempty"`
	Servers    []Server `json:"servers"`
	Check      *Check   `json:"check,omitempty"`
	// ShutdownOnDown closes a server's sessions when its check marks it down
	// (HAProxy on-marked-down shutdown-sessions); otherwise they are kept.
	ShutdownOnDown bool `json:"shutdown_on_down,omitempty"`
	// ProxyProtocol sends a PROXY protocol header (1 or 2) to servers; 0: none.
	ProxyProtocol int `json:"proxy_protocol,omitempty"`
	// KeepAlive enables TCP keep-alive probes on both sides with this idle
	// time; 0 leaves keep-alive off (no setsockopt at all).
	KeepAlive time.Duration `json:"keepalive,omitempty"`
	// Log emits one log line per connection (duration, bytes, termination).
	Log bool `json:"log,omitempty"`
	// DrainGrace is how long connections to a removed server or service are
	// kept before they are closed (default 30s).
	DrainGrace time.Duration `json:"drain_grace,omitempty"`
	// Source holds the rules on client addresses: allow/deny lists (deny
	// wins; a non-empty allow admits only its sources) and per-source
	// limits, applied right after accept (source.go). nil: none.
	Source *SourceRules `json:"source,omitempty"`
	// ResolveInterval is how often the names of servers given by Host are
	// resolved again (default DefaultResolveInterval, jittered by ±10%).
	ResolveInterval time.Duration `json:"resolve_interval,omitempty"`
	// HTTP, when set, serves the service's connections in HTTP mode
	// (http.go, package httpproxy): the pool still accepts them, with its
	// source rules and maxconn, then hands each to the HTTP proxy, which
	// routes every request by its rules to this service's servers or to
	// another TCP service's (a pool; one without binds is one that only
	// rules reach). TCP only.
	HTTP *httpproxy.HTTP `json:"http,omitempty"`
	// SNI routes the service's TLS connections, not terminated, by the
	// server name of their ClientHello, to this service's servers or
	// another TCP service's; handed over like HTTP mode's. TCP only.
	SNI *httpproxy.SNI `json:"sni,omitempty"`
	// Cookie persists the clients of requests that reach this service in
	// HTTP mode (its own HTTP, or another service's rule) on a server by
	// an HTTP cookie (http.go, httpproxy.Cookie), with each server's
	// Server.Cookie. TCP only.
	Cookie *httpproxy.Cookie `json:"cookie,omitempty"`
}

// DefaultResolveInterval is Service.ResolveInterval's default.
const DefaultResolveInterval = 10 * time.Second

// Timeouts of a service (HAProxy's `timeout …`). Zero picks the default.
type Timeouts struct {
	Connect time.Duration `json:"connect,omitempty"` // default 5s
	// Client and Server are inactivity timeouts on each side (default 30s).
	Client time.Duration `json:"client,omitempty"`
	Server time.Duration `json:"server,omitempty"`
	// Tunnel, when set, replaces Client and Server once data has flowed both ways.
	Tunnel time.Duration `json:"tunnel,omitempty"`
	// ClientFin and ServerFin, when set, replace Client and Server once one
	// direction is shut (half-closed connections).
	ClientFin time.Duration `json:"client_fin,omitempty"`
	ServerFin time.Duration `json:"server_fin,omitempty"`
	// Queue bounds how long a connection waits for a server slot (default: Connect).
	Queue time.Duration `json:"queue,omitempty"`
}

// AdminState is the operator's state of a server.
type AdminState string

// Server administrative states.
const (
	Ready AdminState = "ready"
	// Drain: existing connections are kept, no new ones (also weight 0).
	Drain AdminState = "drain"
	// Maint: no new connections and no health checks.
	Maint AdminState = "maint"
)

// Server is one backend server.
type Server struct {
	Name string         `json:"name"`
	Addr netip.AddrPort `json:"addr"`
	// Host, instead of Addr, names the server by DNS: the pool resolves it
	// with the system resolver every ResolveInterval (resolve.go) and
	// connects to Port on the address found. Addr is then left zero.
	Host string `json:"host,omitempty"`
	Port uint16 `json:"port,omitempty"`
	// Weight 1–256 (HAProxy's range); 0 drains the server. Callers must
	// set it: the zero value drains.
	Weight int `json:"weight"`
	// MaxConn caps the server's concurrent connections; 0 is unlimited.
	// A connection bound to this server (source hash, persistence) that
	// finds it full waits in the server's own queue; one that may go
	// anywhere waits in the service queue while every server is full. Both
	// waits are bounded by Timeouts.Queue.
	MaxConn int        `json:"maxconn,omitempty"`
	Backup  bool       `json:"backup,omitempty"`
	State   AdminState `json:"state,omitempty"` // default ready
	// CheckPort, when set, is the port this server's checks connect to,
	// before the check's own Port (HAProxy's per-server "port").
	CheckPort uint16 `json:"check_port,omitempty"`
	// TLS, when set, wraps the connection to the server in TLS (HAProxy's
	// `ssl`; servertls.go); the client side stays plain TCP. Checks are
	// not affected: the check's own TLS says how they connect.
	TLS *ServerTLS `json:"tls,omitempty"`
	// CheckAddr, when valid, is the address this server's checks connect
	// to, before the check's own Address (keepalived's connect_ip,
	// HAProxy's per-server "addr").
	CheckAddr netip.Addr `json:"check_addr,omitzero"`
	// CheckTargets, when set, are where this server is checked instead of
	// its address: it is up only while the check passes at every one, in
	// turn (keepalived's SMTP_CHECK host blocks).
	CheckTargets []netip.AddrPort `json:"check_targets,omitempty"`
	// Unchecked: the service's check never takes this server out: no
	// check runs for it and it is NOCHECK, while the others are checked.
	Unchecked bool `json:"unchecked,omitempty"`
	// SOCKS4, when valid, is the SOCKS4 proxy the server is reached
	// through (HAProxy's `socks4`; socks4.go): every connection to the
	// server is a CONNECT through it, for a server the gateway cannot
	// reach directly. The server's address must be IPv4: SOCKS4 carries
	// no other. A refused CONNECT is a failed connect (retried,
	// redispatched, counted). TLS to the server runs inside the tunnel.
	SOCKS4 netip.AddrPort `json:"socks4,omitzero"`
	// CheckViaSOCKS4 sends the server's checks through SOCKS4 too
	// (HAProxy's `check-via-socks4`); without it they connect to the
	// server directly, as HAProxy's do.
	CheckViaSOCKS4 bool `json:"check_via_socks4,omitempty"`
	// Cookie is the value of the service's Cookie that names this server
	// (HAProxy's server `cookie VALUE`); empty: no request is persisted
	// on it (one it answers clears the client's cookie in insert mode).
	Cookie string `json:"cookie,omitempty"`
	// SourceAddr, when valid, replaces the service's SourceAddr for this
	// server's connections and checks (HAProxy's server `source ADDR`).
	SourceAddr netip.Addr `json:"source_addr,omitzero"`
}

// ownCheck is the server's own part in its service's check.
func (s Server) ownCheck() healthcheck.ServerCheck {
	return healthcheck.ServerCheck{Unchecked: s.Unchecked, Addr: s.CheckAddr, Port: s.CheckPort, Targets: s.CheckTargets}
}

// Check and CheckType are the health checks' types, shared with the
// kernel load balancer (package healthcheck).
type (
	CheckType = healthcheck.CheckType
	Check     = healthcheck.Check
)

// Health check types.
const (
	CheckTCP       = healthcheck.CheckTCP
	CheckTCPExpect = healthcheck.CheckTCPExpect
	CheckHTTP      = healthcheck.CheckHTTP
	CheckCommand   = healthcheck.CheckCommand
)

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.BusyPoll < 0 || c.BusyPoll > MaxBusyPoll {
		errs = append(errs, fmt.Errorf("busy poll %v: must be between 0 and %v", c.BusyPoll, MaxBusyPoll))
	}
	names := map[string]bool{}
	binds := map[Protocol]map[netip.AddrPort]string{ProtoTCP: {}, ProtoUDP: {}}
	for i, s := range c.Services {
		where := fmt.Sprintf("service %q", s.Name)
		if s.Name == "" {
			where = fmt.Sprintf("service #%d", i)
			errs = append(errs, fmt.Errorf("%s: empty name", where))
		} else if names[s.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name", where))
		}
		names[s.Name] = true
		proto := s.proto()
		// A TCP service without binds is a pool that HTTP rules send
		// requests to (HAProxy's backend that is no frontend's default).
		if len(s.Binds) == 0 && (proto != ProtoTCP || s.HTTP != nil || s.SNI != nil) {
			errs = append(errs, fmt.Errorf("%s: no bind", where))
		}
		switch proto {
		case ProtoTCP:
		case ProtoUDP:
			if s.Transparent || s.TransparentAddr.IsValid() {
				errs = append(errs, fmt.Errorf("%s: udp: transparent mode is for TCP", where))
			}
			if s.hasSourceAddr() {
				errs = append(errs, fmt.Errorf("%s: udp: a source address is for TCP", where))
			}
			if s.ProxyProtocol != 0 {
				errs = append(errs, fmt.Errorf("%s: udp: no PROXY protocol for datagrams", where))
			}
			if s.UDPReplies < 0 {
				errs = append(errs, fmt.Errorf("%s: negative udp_replies", where))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: unknown protocol %q (want tcp or udp)", where, s.Protocol))
			proto = ProtoTCP
		}
		for _, b := range s.Binds {
			if !b.IsValid() || b.Port() == 0 {
				errs = append(errs, fmt.Errorf("%s: invalid bind %v", where, b))
				continue
			}
			if proto == ProtoUDP && b.Addr().IsUnspecified() {
				// A reply must leave from the address the client sent to;
				// a wildcard socket would answer from the route's source.
				errs = append(errs, fmt.Errorf("%s: udp bind %v: a wildcard address cannot answer from the address the client used: bind each address", where, b))
			}
			if o, dup := binds[proto][b]; dup {
				errs = append(errs, fmt.Errorf("%s: bind %v already used by service %q", where, b, o))
			}
			binds[proto][b] = s.Name
		}
		switch s.Balance {
		case "", RoundRobin, LeastConn, Source, First:
		default:
			errs = append(errs, fmt.Errorf("%s: unknown balance %q", where, s.Balance))
		}
		if s.HTTP != nil || s.SNI != nil {
			errs = append(errs, c.validateHTTP(where, s)...)
		}
		errs = append(errs, c.validateCookie(where, s)...)
		if s.Transparent && s.ProxyProtocol != 0 {
			errs = append(errs, fmt.Errorf("%s: transparent and a PROXY protocol header: pick one way to tell the servers the client", where))
		}
		errs = append(errs, s.validateSourceAddrs(where)...)
		if s.ProxyProtocol < 0 || s.ProxyProtocol > 2 {
			errs = append(errs, fmt.Errorf("%s: proxy protocol version %d (want 0, 1 or 2)", where, s.ProxyProtocol))
		}
		if s.MaxConn < 0 {
			errs = append(errs, fmt.Errorf("%s: negative maxconn", where))
		}
		if s.ResolveInterval != 0 && s.ResolveInterval < MinResolveInterval {
			errs = append(errs, fmt.Errorf("%s: resolve interval %v below %v", where, s.ResolveInterval, MinResolveInterval))
		}
		srvNames := map[string]bool{}
		for j, sv := range s.Servers {
			sw := fmt.Sprintf("%s: server %q", where, sv.Name)
			if sv.Name == "" {
				sw = fmt.Sprintf("%s: server #%d", where, j)
				errs = append(errs, fmt.Errorf("%s: empty name", sw))
			} else if srvNames[sv.Name] {
				errs = append(errs, fmt.Errorf("%s: duplicate name", sw))
			}
			srvNames[sv.Name] = true
			switch {
			case sv.Host != "":
				if err := validHostname(sv.Host); err != nil {
					errs = append(errs, fmt.Errorf("%s: host: %w", sw, err))
				}
				if sv.Port == 0 {
					errs = append(errs, fmt.Errorf("%s: host %q without a port", sw, sv.Host))
				}
				if sv.Addr != (netip.AddrPort{}) {
					errs = append(errs, fmt.Errorf("%s: both host %q and address %v", sw, sv.Host, sv.Addr))
				}
			case !sv.Addr.IsValid() || sv.Addr.Port() == 0:
				errs = append(errs, fmt.Errorf("%s: invalid address %v", sw, sv.Addr))
			}
			if sv.Weight < 0 || sv.Weight > 256 {
				errs = append(errs, fmt.Errorf("%s: weight %d out of 0..256", sw, sv.Weight))
			}
			if sv.MaxConn < 0 {
				errs = append(errs, fmt.Errorf("%s: negative maxconn", sw))
			}
			switch sv.State {
			case "", Ready, Drain, Maint:
			default:
				errs = append(errs, fmt.Errorf("%s: unknown state %q", sw, sv.State))
			}
			if sv.TLS != nil {
				if proto == ProtoUDP {
					errs = append(errs, fmt.Errorf("%s: tls: for TCP servers", sw))
				}
				for _, err := range sv.TLS.validate() {
					errs = append(errs, fmt.Errorf("%s: %w", sw, err))
				}
			}
			errs = append(errs, sv.validateOwnCheck(sw)...)
			errs = append(errs, s.validateSOCKS4(sw, sv)...)
		}
		if s.Source != nil {
			for _, err := range s.Source.validate() {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
		if ck := s.Check; ck != nil {
			errs = append(errs, ck.Validate(where)...)
		}
	}
	return errors.Join(errs...)
}

// validateOwnCheck reports a server's own check settings that contradict
// each other: targets replace the check address and port, and an
// unchecked server is checked nowhere.
func (s Server) validateOwnCheck(where string) []error {
	var errs []error
	for _, t := range s.CheckTargets {
		if !t.IsValid() || t.Port() == 0 {
			errs = append(errs, fmt.Errorf("%s: invalid check target %v", where, t))
		}
	}
	if len(s.CheckTargets) > 0 && (s.CheckAddr.IsValid() || s.CheckPort != 0) {
		errs = append(errs, fmt.Errorf("%s: check targets and a check address or port: the targets say where it is checked", where))
	}
	if s.Unchecked && (s.CheckAddr.IsValid() || s.CheckPort != 0 || len(s.CheckTargets) > 0) {
		errs = append(errs, fmt.Errorf("%s: unchecked, with a check address, port or targets", where))
	}
	return errs
}

// proto is the service's protocol, ProtoTCP when unset.
func (s Service) proto() Protocol {
	if s.Protocol == "" {
		return ProtoTCP
	}
	return s.Protocol
}

// withDefaults returns the service with every zero field replaced by its default.
func (s Service) withDefaults() Service {
	if s.Balance == "" {
		s.Balance = RoundRobin
	}
	t := &s.Timeouts
	if t.Connect == 0 {
		t.Connect = 5 * time.Second
	}
	if t.Client == 0 {
		t.Client = 30 * time.Second
	}
	if t.Server == 0 {
		t.Server = 30 * time.Second
	}
	if t.Queue == 0 {
		t.Queue = t.Connect
	}
	if s.Retries == 0 {
		s.Retries = 3
	} else if s.Retries < 0 {
		s.Retries = 0
	}
	if s.DrainGrace == 0 {
		s.DrainGrace = 30 * time.Second
	}
	if s.ResolveInterval == 0 {
		s.ResolveInterval = DefaultResolveInterval
	}
	if s.Check != nil {
		c := *s.Check.WithDefaults()
		s.Check = &c
	}
	return s
}

func (s Server) admin() AdminState {
	if s.State == "" {
		return Ready
	}
	return s.State
}
