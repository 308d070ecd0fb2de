package importer

import (
	"cmp"
	"fmt"
	"slices"
)

// Feature is something a source configuration asks of a service or a check
// that the site schema cannot say yet. A service that needs one is refused:
// left out of the site with a Refusal naming the directive, never imported
// with a weakened check or a check that cannot pass.
//
// Each feature is detected where its directive is read; when the schema
// learns the feature, mapping it means changing that one place (and the
// writer), and deleting the feature here. The places are listed with each
// constant.
type Feature string

const (
	// FeatCheckPort: where a check connects, where the site cannot say
	// it (a port or address per server is mapped to check_port and
	// check_address, an SMTP_CHECK's host blocks to check_targets): a
	// `tcp-check connect addr` (a step to another address), an
	// expression for a port or address, a host block in another checker
	// than SMTP_CHECK (hapmap.go checkConnect, tcpCheck; kamap.go
	// lvsCheck, smtpHost; kadigest.go udpCheck).
	FeatCheckPort Feature = "check-port"
	// FeatPerServerCheck: servers of one service checked differently:
	// keepalived real servers with another checker, request or TLS
	// (timing aside; command checks that differ become one command), a
	// real server with two checkers that differ by more than where they
	// connect (kamap.go secondChecker),
	// HAProxy servers with other check TLS settings (kamap.go
	// virtualServer; hapmap.go serviceCheck). A server without a check
	// beside checked ones is mapped (unchecked: true).
	FeatPerServerCheck Feature = "per-server-check"
	// FeatTLSCheck: check TLS the site cannot say: `verify required`
	// without an SNI (HAProxy checks the chain only), `verifyhost`,
	// `crl-file`, a relative `ca-file`/`crt` (ca-base, crt-base), an SNI
	// that is no host name,
	// `check-ssl` on some servers only, TLS on a mysql/pgsql check,
	// keepalived's SSL `password` (an encrypted key) (hapmap.go server,
	// checkConnect, tcpCheck, serviceCheck; kamap.go sslBlock).
	FeatTLSCheck Feature = "tls-check"
	// FeatCheckSequence: an expect the site cannot say (a negation,
	// `min-recv`, `ok-status`/`error-status`, `rbinary`, a header match,
	// a regexp Go cannot compile), several http-check sends or expects,
	// `send-lf`, `set-var`, a connect through SOCKS4 or with PROXY
	// (hapmap.go httpCheck, tcpCheck, checkConnect).
	FeatCheckSequence Feature = "check-sequence"
	// FeatStatusRange: an `expect status` the site cannot read, an
	// `rstatus` Go cannot compile or that matches no status, a keepalived
	// status_code that is no status (hapmap.go httpCheck; kamap.go kaURL).
	FeatStatusRange Feature = "status-range"
	// FeatCheckDigest: a keepalived url `digest` (an MD5 of the body)
	// with a regex in the same url (kamap.go kaURL); a digest alone is a
	// command check (kadigest.go).
	FeatCheckDigest Feature = "check-digest"
	// FeatCheckHeaders: a body, a request target that is no absolute
	// path (with TLS or a body expect; else a command check sends it,
	// hapmap.go rawHTTPCheck), a method or header the site cannot send in
	// an HTTP check (hapmap.go httpCheck, option; kamap.go lvsCheck,
	// kaURL).
	FeatCheckHeaders Feature = "check-headers"
	// FeatProtocolCheck: HAProxy's spop-check, a pgsql-check without
	// user, an SMTP domain or database user the site cannot send,
	// keepalived DNS_CHECK/BFD_CHECK, a UDP_CHECK reply to compare
	// (hapmap.go option; kamap.go realServer, lvsCheck, udpCheck);
	// PING_CHECK and UDP_CHECK are commands (kamap.go pingCheck,
	// kadigest.go udpCheck).
	FeatProtocolCheck Feature = "protocol-check"
	// FeatScriptCheck: a server check by an external command the site
	// cannot run: HAProxy external-check, keepalived FILE_CHECK, a
	// MISC_CHECK with misc_dynamic (hapmap.go option; kamap.go realServer,
	// miscCheck).
	FeatScriptCheck Feature = "script-check"
	// FeatAgentCheck: HAProxy's agent-check, which can change a server's
	// state and weight (hapmap.go server).
	FeatAgentCheck Feature = "agent-check"
	// FeatServerName: a server-template, a check address given by name
	// (hapmap.go server, line); servers given by name are mapped.
	FeatServerName Feature = "server-name"
	// FeatServerTLS: TLS to a server the site cannot say (`ssl` itself is
	// mapped to the server's tls): an `sni` expression other than
	// str(NAME), `crl-file`, a relative `ca-file`/`crt` (ca-base,
	// crt-base), a `verifyhost` that is no host name (hapmap.go server).
	FeatServerTLS Feature = "server-tls"
	// FeatServerVia: a server reached through something else than a
	// direct connection: `socks4` (hapmap.go server).
	FeatServerVia Feature = "server-via"
	// FeatSourceRules: who may connect and how fast, where the site's
	// source block cannot say it: `tcp-request content|session` and
	// `http-request` rules (and `http-response`/`tcp-response` rules that
	// turn responses away), `rate-limit sessions`, and `tcp-request
	// connection` rules with other conditions or actions (hapmap.go line;
	// hapsource.go sourceRules).
	FeatSourceRules Feature = "source-rules"
	// FeatTransparent: a source the site does not make: a source port or
	// port range, an interface binding, `usesrc` from a header or with a
	// port, servers of one service seen from different kinds of source,
	// a source in HTTP mode, `option transparent` (the client's original
	// destination as the server) (hapsrcaddr.go hapSource, sourceMode;
	// hapmap.go option). A fixed `source` address, `usesrc clientip`,
	// `client` and a fixed foreign address are mapped.
	FeatTransparent Feature = "transparent"
	// FeatTLSTermination: a bind with `ssl` that HTTP mode cannot carry:
	// in a mode tcp section or a backend, with client certificates
	// (`ca-file`, `verify`), `crt-list`, `strict-sni`, a relative crt, no
	// crt (hapmap.go bind; haphttp.go httpBind, httpMode).
	FeatTLSTermination Feature = "tls-termination"
	// FeatProtocol: a virtual_server of another protocol than TCP and UDP
	// (SCTP) (kamap.go virtualServer).
	FeatProtocol Feature = "protocol"
	// FeatKernelLB: IPVS forwarding the site's kernel modes (nat, fnat,
	// dr) do not make: lb_kind TUN, DPVS's SNAT, DPVS's FNAT options
	// (syn_proxy, quic), FNAT by fwmark or without local addresses
	// (kamap.go virtualServer).
	FeatKernelLB Feature = "kernel-lb"
	// FeatVSGroup: a virtual_server_group entry the site cannot say: a
	// range of more than maxGroupRange addresses, a range whose end is
	// not the last part of an address, an entry that is no address and
	// port or fwmark (kamap.go groupEntries, groupRange).
	FeatVSGroup Feature = "vs-group"
	// FeatContentSwitching: HAProxy rules that send a request or
	// connection elsewhere than the one pool by what it holds, or answer
	// it in the proxy itself, where the site's HTTP rules cannot say it:
	// any in mode tcp but use_backend on req_ssl_sni after tcp-request
	// inspect-delay (haphttp.go sniRules), a frontend without
	// default_backend; in mode http, a fetch, flag, action or option the
	// rules lack (haphttp.go httpRules, httpCriterion, httpAction), a
	// backend that is missing or refused; `use-server`, HAProxy 1.x's
	// `reqsetbe` in mode tcp or with a regex Go cannot compile (hapreqfilter.go), `monitor-net`, a `cookie` that reaches a backup server
	// while the others are up in a service not imported in HTTP mode, `option http_proxy`, `http-request
	// return|use-service`, `tcp-request content use-service`, a server's `redir` (hapmap.go
	// line, option, routingAction, services, cookieRouting, server).
	FeatContentSwitching Feature = "content-switching"
	// FeatCookie: cookie persistence the proxy does not make: `prefix`
	// (the server's own cookie prefixed), `postonly`,
	// `preserve`, `maxidle`/`maxlife` (dated cookies), `dynamic`, `attr`,
	// a second `domain` (hapmap.go cookieMap).
	FeatCookie Feature = "cookie"
	// FeatPasswordHash: a userlist's password hash of a scheme the proxy
	// does not verify (DES crypt, yescrypt, …) (hapauth.go).
	FeatPasswordHash Feature = "password-hash"
	// FeatHeaderRewrite: an HTTP header rewrite the proxy does not make
	// as HAProxy does: a value made by another log-format expression than
	// %[src], %[dst], %[ssl_fc], a condition a response rewrite cannot
	// read, a header the service's rules read after it, a regex Go does
	// not compile (hapheaders.go).
	FeatHeaderRewrite Feature = "header-rewrite"
)

// featureWhy says, per feature, what the site lacks.
var featureWhy = map[Feature]string{
	FeatCheckPort:        "a gitgw check connects to IP addresses and port numbers, per service or per server; a tcp-check step connects to another port of the same address only",
	FeatPerServerCheck:   "a gitgw service checks all its servers with one check (a server can be left out of it, or checked at its own address, port or targets, not by another check)",
	FeatTLSCheck:         "the schema's check TLS has no chain-only verification, revocation lists, relative paths, encrypted keys or per-server TLS yet",
	FeatCheckSequence:    "the schema's expects match a string, bytes or a regexp, each once and without negation; cutting or weakening the sequence would pass servers the original marks down",
	FeatStatusRange:      "the schema's statuses are codes and ranges from 100 to 599; guessing would mark down servers the original accepts, or pass ones it marks down",
	FeatCheckDigest:      "a gitgw HTTP check compares no digest of the body; the command check a digest becomes does not match a regex too",
	FeatCheckHeaders:     "a gitgw HTTP check sends GET, HEAD, POST or OPTIONS of an absolute path with headers and no body",
	FeatProtocolCheck:    "the schema has no SPOP, DNS or BFD checks, nor a UDP reply to compare, yet; a TCP connect check would pass servers the original marks down",
	FeatScriptCheck:      "a gitgw command check passes or fails (exit 0 is up); it does not set a weight, watch a file or take HAProxy's external-check arguments",
	FeatAgentCheck:       "gitgw has no agent checks yet; the agent's state and weight changes would be lost",
	FeatServerName:       "a gitgw server by name takes one address of it, and a check address is an IP address; a server-template's servers, one per address a name resolves to, are not made",
	FeatServerTLS:        "a gitgw server's TLS sends a fixed SNI and verifies against a CA file without revocation lists; a name taken from the connection, or a certificate the original would revoke, cannot be said",
	FeatServerVia:        "a gitgw proxy connects to each server directly; dialled at its own address instead of through the SOCKS4 proxy, a server the original reaches only that way is unreachable",
	FeatSourceRules:      "a gitgw service's source rules are allow and deny lists of networks and per-source limits on connections, checked at accept; dropping other rules would let in what the original turns away",
	FeatTransparent:      "a gitgw service connects to all its servers from the route's address, one of the gateway's own (source_address, a server's own too, in TCP or HTTP mode), or, in TCP mode, one fixed foreign address (transparent_address) or the client's (transparent), on any port the kernel picks; it takes no address from a header, binds to no interface and does not forward to the client's original destination",
	FeatTLSTermination:   "gitgw terminates TLS in HTTP mode only, with PEM files of certificate and key chosen by SNI; it verifies no client certificate and terminates no TLS in front of TCP; passing the TLS through would change what clients get",
	FeatProtocol:         "gitgw services carry TCP or UDP",
	FeatKernelLB:         "gitgw forwards in the kernel by NAT (mode nat), full NAT (mode fnat, by VIP and port, to local addresses) or direct routing (mode dr); IPVS tunnelling (TUN: IP-in-IP to the servers), DPVS's SNAT mode and its FNAT options (SYN proxy, QUIC connection ids) are not built",
	FeatVSGroup:          "a gitgw service's binds are addresses with a port, and its fwmarks marks; leaving the entry out would leave its traffic unforwarded",
	FeatCookie:           "gitgw persists by a cookie it inserts (with indirect, nocache, httponly, secure and one domain) or one the servers set (as it is, or with the server's value); prefixing the servers' own cookie, inserting only on POST, preserving the server's cookie, dated or dynamic cookies and extra attributes are not built: without them clients would lose their server",
	FeatHeaderRewrite:    "gitgw's header rewrites set, add, delete and replace (by regex) header fields and lines with text, the client's and local addresses and the TLS flag, on conditions of the request, after the rules have routed it; a rewrite left out would change what the servers or the clients see",
	FeatPasswordHash:     "gitgw verifies SHA-512, SHA-256 and MD5 crypt and bcrypt password hashes; a user whose hash is of another scheme could not log in",
	FeatContentSwitching: "gitgw routes requests only in HTTP mode, by rules on the host, path, url, method, version, headers (their values, count and numbers), source address and port, and TLS (terms ANDed, alternatives by ||) that use another service, deny or redirect, and TCP connections only by their TLS server name; other routing would send traffic where the original does not",
}

// Refusal is a service or check of a source configuration that the site
// leaves out, because importing it would change what it does.
type Refusal struct {
	// Pos is the directive that needs the feature.
	Pos Pos
	// What is the refused thing: "listen db", "virtual_server 10.0.0.1 80".
	What string
	// Directive is the source's words, as written.
	Directive string
	Feature   Feature
}

func (r Refusal) String() string {
	return fmt.Sprintf("%s: %s not imported: %s needs %s: %s", r.Pos, r.What, r.Directive, r.Feature, featureWhy[r.Feature])
}

// need is a feature a directive asks for, before it is known which service
// it ends up in (a defaults section's line refuses each proxy inheriting it).
type need struct {
	pos       Pos
	directive string
	feature   Feature
}

func needs(p Pos, f Feature, format string, args ...any) need {
	return need{pos: p, directive: fmt.Sprintf(format, args...), feature: f}
}

// refusals collects Refusals; the zero value is ready to use.
type refusals struct{ list []Refusal }

// refuse records that what is left out for each of ns.
func (r *refusals) refuse(what string, ns []need) {
	for _, n := range ns {
		r.list = append(r.list, Refusal{Pos: n.pos, What: what, Directive: n.directive, Feature: n.feature})
	}
}

// sorted orders the refusals like warnings, each once.
func (r *refusals) sorted(fileOrder []string) []Refusal {
	rank := func(f string) int {
		if i := slices.Index(fileOrder, f); i >= 0 {
			return i
		}
		return len(fileOrder)
	}
	var out []Refusal
	for _, x := range r.list {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.SortStableFunc(out, func(a, b Refusal) int {
		return cmp.Or(cmp.Compare(rank(a.Pos.File), rank(b.Pos.File)), cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line))
	})
	return out
}
