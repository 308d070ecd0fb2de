package importer

import (
	"net/netip"
	"slices"
	"time"
)

// The model is the site as the importer builds it: the schema's shape, with
// each optional value marked as set or not, so that the writer states only
// what the sources said (or where their defaults differ from the schema's)
// and the site stays short.

// opt is a value the sources set explicitly.
type opt[T comparable] struct {
	v  T
	ok bool
}

func some[T comparable](v T) opt[T] { return opt[T]{v: v, ok: true} }

type site struct {
	name      string
	nodes     []*node
	vrrp      []*instance
	services  []*service
	userlists []*hapUserlist // hapauth.go
}

func (s *site) node(name string) *node {
	for _, n := range s.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

type node struct {
	name   string
	source string // the file the node's keepalived.conf came from
	ifaces []*iface
	// held are addresses the node must hold on an interface the sources
	// do not name (a virtual_server's address no instance holds).
	held []heldAddr
}

type heldAddr struct {
	addr netip.Addr
	why  string
}

func (n *node) iface(name string) *iface {
	for _, i := range n.ifaces {
		if i.name == name {
			return i
		}
	}
	i := &iface{name: name}
	n.ifaces = append(n.ifaces, i)
	return i
}

type iface struct {
	name  string
	addrs []string // CIDRs
	notes []string // comments, e.g. where a prefix length was guessed
}

type instance struct {
	name      string
	pos       Pos
	srcs      []Pos // the vrrp_instance of each node
	iface     string
	vrid      int
	version   opt[int]
	advert    opt[time.Duration]
	prios     []nodePrio
	preempt   opt[bool]
	delay     opt[time.Duration]
	password  opt[string]
	vips      []vip
	excluded  []vip
	trackIfs  []trackIf
	checks    []trackCheck
	trackSvcs []trackSvc
	garpDelay opt[time.Duration]
	garpRep   opt[int]
	garpRefr  opt[time.Duration]
	notify    [4]string // master, backup, fault, stop
	unicast   bool
	syncGroup string
	vmac      bool
}

type nodePrio struct {
	node  string
	prio  int
	state string // keepalived's initial state, for the comment
}

type vip struct {
	addr  string // CIDR
	label string
	dev   string
}

type trackIf struct {
	name   string
	weight int
}

type trackSvc struct {
	service string
	weight  int
}

type trackCheck struct {
	name    string
	command string
	check
	weight int
}

// check is a health check; only what the source set is written.
type check struct {
	kind         string
	interval     opt[time.Duration]
	timeout      opt[time.Duration]
	rise, fall   opt[int]
	method, path opt[string]
	host         opt[string]
	expectStatus opt[int]
	expectString opt[string]
	send, expect opt[string]
	fastInter    opt[time.Duration]
	downInter    opt[time.Duration]
	shutdown     bool
	// cmd is a service check's command (kind command); a VRRP track
	// check's is its trackCheck's.
	cmd string
	// asCmd is the same check as a command (a keepalived HTTP_GET), for
	// real servers whose checks differ and so become one command.
	asCmd *check
	// rawTarget: an HTTP check's request target that is no absolute path
	// (HAProxy's "option httpchk *"), sent as written by a command check;
	// rawVersion its HTTP version.
	rawTarget  opt[string]
	rawVersion string
	// targets: a keepalived SMTP_CHECK's host blocks, each "IP:port",
	// which all must pass; a server's own (#Server.check_targets).
	targets []string
	// What a service check adds (#ServiceCheck).
	port        opt[int]
	address     opt[string]
	tls         *checkTLS
	headers     []header
	statuses    []string // expect_statuses: "200", "200-399"
	expectRegex opt[string]
	requests    []httpRequest
	steps       []step
	domain      opt[string]
	user        opt[string]
	database    opt[string]
	role        opt[string]
}

// clone copies a check, its lists included.
func (c *check) clone() *check {
	d := *c
	if c.tls != nil {
		t := *c.tls
		d.tls = &t
	}
	d.headers, d.statuses = slices.Clone(c.headers), slices.Clone(c.statuses)
	d.requests, d.steps = slices.Clone(c.requests), slices.Clone(c.steps)
	return &d
}

// checkTLS is a check over TLS (#CheckTLS).
type checkTLS struct {
	sni          opt[string]
	verify       string
	ca, crt, key opt[string]
}

type header struct{ name, value string }

// httpRequest is one of several requests of an http check (#CheckRequest).
type httpRequest struct {
	method, path, host string
	headers            []header
	statuses           []string
	expectStatus       opt[int]
	expectRegex        string
	// digest: keepalived's MD5 of the body (lower-case hex); the check
	// becomes a command (kadigest.go).
	digest string
}

// step is one step of a tcp-check (#CheckStep); kind is the field's name:
// connect, send, send_hex, expect, expect_hex, expect_regex.
type step struct {
	kind string
	data string
	port opt[int] // connect
	tls  bool     // connect
}

type service struct {
	name     string
	pos      Pos
	comments []string
	nodes    []string
	// mode ("nat", "dr"; empty: the proxy), protocol ("udp"; empty: tcp),
	// iface (the dr segment's interface), transparent (the servers see the
	// client's address).
	mode, protocol, iface string
	transparent           bool
	binds                 []string
	// sourceAddr and transparentAddr: the gateway's own address the
	// connections to the servers leave from, and the fixed foreign one
	// the servers see (#Service.source_address, transparent_address).
	sourceAddr, transparentAddr string
	// group is "virtual_server group NAME" for a keepalived
	// virtual_server_group's service, for the words of warnings.
	group string
	// fwmarks: a kernel service's firewall marks (keepalived's
	// virtual_server fwmark, a virtual_server_group's fwmark entries).
	fwmarks []int
	// localAddrs: an fnat service's local addresses (DPVS's
	// local_address_group), as the site writes them; laddrs the entries
	// they came from, which the node must hold.
	localAddrs  []string
	laddrs      []laddrEntry
	balance     opt[string]
	persistence opt[time.Duration]
	maxconn     opt[int]
	maxconnFrom string // where maxconn came from, when not the service itself
	timeouts    [7]opt[time.Duration]
	retries     opt[int]
	redispatch  opt[bool]
	servers     []*server
	check       *check
	// unchecked: no check on purpose (keepalived's virtual_server with no
	// checker), the site's unchecked: true.
	unchecked  bool
	proxyProto string
	source     *sourceRules
	// resolveInterval: how often servers given by name are resolved again.
	resolveInterval opt[time.Duration]
	// http: HTTP mode (haphttp.go); nil: TCP. sni: SNI routing.
	http *httpMode
	sni  *sniMode
	// cookie: persistence by an HTTP cookie (#Service.cookie); nil: none.
	cookie *svcCookie
}

// svcCookie is a #Service.cookie.
type svcCookie struct {
	name, mode, domain                  string
	indirect, nocache, httponly, secure bool
}

// The timeouts of a service, in the schema's order.
const (
	toConnect = iota
	toClient
	toServer
	toTunnel
	toClientFin
	toServerFin
	toQueue
)

var timeoutNames = [7]string{"connect", "client", "server", "tunnel", "client_fin", "server_fin", "queue"}

type server struct {
	name     string
	address  string
	weight   opt[int]
	maxconn  opt[int]
	backup   bool
	disabled bool
	drain    bool
	// checkPort: this server's own check port (#Server.check_port).
	checkPort opt[int]
	// checkAddr and checkTargets: where this server is checked, when not
	// where the service's check says (#Server.check_address,
	// check_targets); unchecked: the check never takes it out.
	checkAddr    opt[string]
	checkTargets []string
	unchecked    bool
	// tls: TLS from the proxy to the server (#Server.tls); nil: plain.
	tls *serverTLS
	// cookie: the service cookie's value naming it (#Server.cookie).
	cookie string
	// sourceAddr: the gateway's own address its connections leave from
	// (#Server.source_address).
	sourceAddr string
	// via: the SOCKS4 proxy it is reached through (#Server.via); nil:
	// directly.
	via *serverVia
}

// serverVia is a server's #Server.via: HAProxy's socks4 and
// check-via-socks4.
type serverVia struct {
	socks4 string
	check  bool
}

// serverTLS is a server's #ServerTLS. verify "" is HAProxy's default,
// settled per service (global ssl-server-verify).
type serverTLS struct {
	pos                       Pos
	verify                    string
	ca, sni, verifyHost, cert opt[string]
	alpn                      []string
	noReuse                   bool
	systemCA                  bool // ca-file @system-ca
}

// vips are a kernel service's virtual addresses, its binds' (a dr service
// takes its interface from the vrrp_instance that holds one; the node must
// hold each), each once.
func (s *service) vips() []netip.Addr {
	var out []netip.Addr
	for _, b := range s.binds {
		if ap, err := netip.ParseAddrPort(b); err == nil && !slices.Contains(out, ap.Addr()) {
			out = append(out, ap.Addr())
		}
	}
	return out
}

// addrPort is the server's address and port; port 0 for an address alone
// (a kernel service's server that keeps the client's port). The importer
// writes only addresses in these forms into kernel services.
func (s *server) addrPort() netip.AddrPort {
	if a, err := netip.ParseAddr(s.address); err == nil {
		return netip.AddrPortFrom(a, 0)
	}
	return netip.MustParseAddrPort(s.address)
}
