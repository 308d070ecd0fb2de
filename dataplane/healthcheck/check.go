package healthcheck

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The protocol checks, run as predefined sequences (HAProxy's
// smtpchk, mysql-check, pgsql-check, redis-check, ldap-check).
const (
	CheckSequence CheckType = "tcp-check" // Steps: connect / send / expect, as HAProxy's tcp-check
	CheckSMTP     CheckType = "smtp"      // 220 greeting, EHLO Domain, 250
	CheckMySQL    CheckType = "mysql"     // the server's handshake; with User, a login that must be accepted
	CheckPgSQL    CheckType = "pgsql"     // a startup message for User answered by an authentication request (R)
	CheckRedis    CheckType = "redis"     // PING answered +PONG; with Role, INFO replication must say role:Role
	CheckLDAP     CheckType = "ldap"      // an anonymous LDAPv3 bind answered with success
)

// CheckType names a health check.
type CheckType string

// Health check types.
const (
	CheckTCP       CheckType = "tcp"        // connect only
	CheckTCPExpect CheckType = "tcp-expect" // connect, send Send, expect Expect in the reply
	CheckHTTP      CheckType = "http"       // HTTP request, expect status and/or Expect in the body
	CheckCommand   CheckType = "command"    // run Command; exit 0 is up
)

// Check is a service's health check, run against every server.
type Check struct {
	Type         CheckType     `json:"type"`
	Interval     time.Duration `json:"interval,omitempty"`      // default 2s
	FastInterval time.Duration `json:"fast_interval,omitempty"` // while a state is changing; default Interval
	DownInterval time.Duration `json:"down_interval,omitempty"` // while down; default Interval
	Timeout      time.Duration `json:"timeout,omitempty"`       // default min(Interval, 2s)
	Rise         int           `json:"rise,omitempty"`          // default 2
	Fall         int           `json:"fall,omitempty"`          // default 3
	// Port and Address override the server's port and address for checks
	// (Patroni serves 5432 and answers checks on 8008).
	Port    uint16     `json:"port,omitempty"`
	Address netip.Addr `json:"address,omitempty"`
	// Source, when valid, is the node's own address checks connect from
	// (HAProxy's `source ADDR`: servers that accept only that address
	// would otherwise fail every check). Set per server by the proxy.
	Source netip.Addr `json:"source,omitzero"`
	// TLS runs the check over TLS (not for command, mysql and pgsql).
	TLS *CheckTLS `json:"tls,omitempty"`
	// MaxRead bounds what an expect searches: an HTTP body or a reply in a
	// sequence (default DefaultCheckRead, at most MaxCheckRead).
	MaxRead int `json:"max_read,omitempty"`
	// Steps are the tcp-check sequence.
	Steps []CheckStep `json:"steps,omitempty"`
	// Send is written after connecting (tcp-expect).
	Send string `json:"send,omitempty"`
	// Expect must appear in the reply (tcp-expect) or the body (http).
	Expect string `json:"expect,omitempty"`
	// ExpectStatus is the HTTP status required; 0 accepts 2xx and 3xx.
	ExpectStatus int    `json:"expect_status,omitempty"`
	Method       string `json:"method,omitempty"` // default GET
	Path         string `json:"path,omitempty"`   // default /
	Host         string `json:"host,omitempty"`
	// Headers, Status (replacing ExpectStatus) and ExpectRegex complete
	// the one request of an http check; Requests, when set, are several
	// requests instead, which must all pass.
	Headers     []Header      `json:"headers,omitempty"`
	Status      []StatusRange `json:"status,omitempty"`
	ExpectRegex string        `json:"expect_regex,omitempty"`
	Requests    []HTTPRequest `json:"requests,omitempty"`
	// Protocol checks: User (mysql, pgsql), Database (pgsql), Role
	// (redis: master or slave), Domain (smtp EHLO, default localhost).
	User     string `json:"user,omitempty"`
	Database string `json:"database,omitempty"`
	Role     string `json:"role,omitempty"`
	Domain   string `json:"domain,omitempty"`
	// Command is argv; it gets GITGW_SERVER_NAME, GITGW_SERVER_ADDR and
	// GITGW_SERVER_PORT in its environment.
	Command []string `json:"command,omitempty"`
}

// WithDefaults returns the check with every zero field replaced by its
// default (HAProxy's: inter 2s, rise 2, fall 3).
func (c *Check) WithDefaults() *Check {
	d := *c
	if d.Interval == 0 {
		d.Interval = 2 * time.Second
	}
	if d.FastInterval == 0 {
		d.FastInterval = d.Interval
	}
	if d.DownInterval == 0 {
		d.DownInterval = d.Interval
	}
	if d.Timeout == 0 {
		d.Timeout = min(d.Interval, 2*time.Second)
	}
	if d.Rise == 0 {
		d.Rise = 2
	}
	if d.Fall == 0 {
		d.Fall = 3
	}
	if d.Method == "" {
		d.Method = "GET"
	}
	if d.Path == "" {
		d.Path = "/"
	}
	return &d
}

// Bounds on what a check reads from a server: a backend is not trusted to
// send a short reply, and the checker runs in the process that also runs
// VRRP. Every check also runs under its Timeout.
const (
	// MaxCheckLine bounds an HTTP status line and each header line.
	MaxCheckLine = 8 << 10
	// MaxCheckHeaders bounds the whole HTTP header block.
	MaxCheckHeaders = 64 << 10
	// DefaultCheckRead is how much of an HTTP body, or of a reply in a
	// sequence, an expect searches unless MaxRead says otherwise (HAProxy's
	// tune.chksize).
	DefaultCheckRead = 16 << 10
	// MaxCheckRead bounds MaxRead.
	MaxCheckRead = 1 << 20
)

// CheckTLS wraps check connections in TLS (HAProxy's check-ssl, keepalived's SSL_GET).
type CheckTLS struct {
	// ServerName is sent as SNI and verified; default the check's Host, else none.
	ServerName string `json:"server_name,omitempty"`
	// Verify "none" accepts any certificate; "required" (the default)
	// verifies it against CAFile, or the system's roots without one.
	Verify string `json:"verify,omitempty"`
	CAFile string `json:"ca_file,omitempty"`
	// CertFile and KeyFile are a client certificate, for servers that ask.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
}

// CheckStep is one step of a tcp-check sequence. Exactly one of Connect,
// Send, Expect or ExpectRegex is set.
type CheckStep struct {
	// Connect closes the current connection and opens another, to Port
	// when set (else the check's port), in TLS when the check has TLS and
	// NoTLS is false. A sequence that does not start with a connect gets one.
	Connect bool   `json:"connect,omitempty"`
	Port    uint16 `json:"port,omitempty"`
	NoTLS   bool   `json:"no_tls,omitempty"`
	// Send is written as is (text or binary); it starts a new reply:
	// what was read before it is no longer searched.
	Send []byte `json:"send,omitempty"`
	// Expect must appear in what was read since the last send.
	Expect []byte `json:"expect,omitempty"`
	// ExpectRegex must match what was read since the last send (RE2 syntax).
	ExpectRegex string `json:"expect_regex,omitempty"`
}

// HTTPRequest is one request of an http check; every request must pass.
type HTTPRequest struct {
	Method  string   `json:"method,omitempty"` // default GET
	Path    string   `json:"path,omitempty"`   // default /
	Host    string   `json:"host,omitempty"`   // default the server's address
	Headers []Header `json:"headers,omitempty"`
	// Status lists the statuses accepted; empty accepts 200–399.
	Status []StatusRange `json:"status,omitempty"`
	// Expect must appear in the body, ExpectRegex match it (within MaxRead bytes).
	Expect      string `json:"expect,omitempty"`
	ExpectRegex string `json:"expect_regex,omitempty"`
}

// Header is one request header of an http check.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// StatusRange is an inclusive range of HTTP statuses (Lo == Hi: one status).
type StatusRange struct {
	Lo int `json:"lo"`
	Hi int `json:"hi"`
}

func (r StatusRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// httpRequests are the requests an http check sends: Requests, or the one
// request the top-level fields describe.
func (c *Check) httpRequests() []HTTPRequest {
	if len(c.Requests) > 0 {
		return c.Requests
	}
	r := HTTPRequest{Method: c.Method, Path: c.Path, Host: c.Host, Headers: c.Headers, Status: c.Status, Expect: c.Expect, ExpectRegex: c.ExpectRegex}
	if len(r.Status) == 0 && c.ExpectStatus != 0 {
		r.Status = []StatusRange{{c.ExpectStatus, c.ExpectStatus}}
	}
	return []HTTPRequest{r}
}

func (c *Check) maxRead() int {
	if c.MaxRead > 0 {
		return c.MaxRead
	}
	return DefaultCheckRead
}

// Validate lists every problem of a check; where names the service.
func (c *Check) Validate(where string) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: check: "+format, append([]any{where}, args...)...))
	}
	switch c.Type {
	case CheckTCP, CheckTCPExpect, CheckHTTP, CheckSMTP, CheckMySQL, CheckPgSQL, CheckRedis, CheckLDAP:
	case CheckSequence:
		if len(c.Steps) == 0 {
			bad("tcp-check without steps")
		}
	case CheckCommand:
		if len(c.Command) == 0 {
			bad("command check without a command")
		}
	default:
		bad("unknown check type %q", c.Type)
	}
	if c.Type == CheckTCPExpect && c.Expect == "" {
		bad("tcp-expect check without expect")
	}
	if c.Rise < 0 || c.Fall < 0 || c.Interval < 0 || c.Timeout < 0 || c.FastInterval < 0 || c.DownInterval < 0 {
		bad("negative check parameter")
	}
	if c.MaxRead < 0 || c.MaxRead > MaxCheckRead {
		bad("max read %d out of 0..%d", c.MaxRead, MaxCheckRead)
	}
	if c.TLS != nil {
		switch c.Type {
		case CheckCommand, CheckMySQL, CheckPgSQL:
			bad("tls does not apply to a %s check (the protocol negotiates its own)", c.Type)
		}
		switch c.TLS.Verify {
		case "", "none", "required":
		default:
			bad("tls verify %q: want none or required", c.TLS.Verify)
		}
		if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
			bad("tls client certificate needs both cert_file and key_file")
		}
	}
	for i, s := range c.Steps {
		n := 0
		for _, set := range []bool{s.Connect, s.Send != nil, s.Expect != nil, s.ExpectRegex != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			bad("step %d: want exactly one of connect, send, expect, expect_regex", i)
		}
		if s.ExpectRegex != "" {
			if _, err := regexp.Compile(s.ExpectRegex); err != nil {
				bad("step %d: expect_regex: %w", i, err)
			}
		}
	}
	for i, r := range c.httpRequests() {
		if c.Type != CheckHTTP {
			break
		}
		if r.ExpectRegex != "" {
			if _, err := regexp.Compile(r.ExpectRegex); err != nil {
				bad("request %d: expect_regex: %w", i, err)
			}
		}
		for _, s := range r.Status {
			if s.Lo < 100 || s.Hi > 599 || s.Lo > s.Hi {
				bad("request %d: status %s out of 100..599", i, s)
			}
		}
		for _, h := range r.Headers {
			if h.Name == "" || strings.ContainsAny(h.Name, ":\r\n\x00 \t") || strings.ContainsAny(h.Value, "\r\n\x00") {
				bad("request %d: header %q: bad name or value", i, h.Name)
			}
		}
		for _, s := range []string{r.Method, r.Path, r.Host} {
			if strings.ContainsAny(s, "\r\n\x00 \t") {
				bad("request %d: %q: spaces or control characters in method, path or host", i, s)
			}
		}
	}
	if strings.ContainsAny(c.Domain+c.User+c.Database+c.Role, "\r\n\x00") {
		bad("control characters in domain, user, database or role")
	}
	return errs
}

// Describe is the check in words, in HAProxy's order (what is checked,
// then how often), for plans and status.
func (c *Check) Describe() string {
	var b strings.Builder
	b.WriteString(string(c.Type))
	if c.Address.IsValid() || c.Port != 0 {
		b.WriteString(" on")
		if c.Address.IsValid() {
			fmt.Fprintf(&b, " address %s", c.Address)
		}
		if c.Port != 0 {
			fmt.Fprintf(&b, " port %d", c.Port)
		}
	}
	if t := c.TLS; t != nil {
		b.WriteString(" tls")
		if t.ServerName != "" {
			fmt.Fprintf(&b, " sni %s", t.ServerName)
		}
		fmt.Fprintf(&b, " verify %s", cmp.Or(t.Verify, "required"))
		if t.CAFile != "" {
			fmt.Fprintf(&b, " ca-file %s", t.CAFile)
		}
		if t.CertFile != "" {
			fmt.Fprintf(&b, " crt %s", t.CertFile)
		}
	}
	switch c.Type {
	case CheckHTTP:
		for i, r := range c.httpRequests() {
			if i > 0 {
				b.WriteString(" and")
			}
			fmt.Fprintf(&b, " %s %s", cmp.Or(r.Method, "GET"), cmp.Or(r.Path, "/"))
			if r.Host != "" {
				fmt.Fprintf(&b, " host %s", r.Host)
			}
			for _, h := range r.Headers {
				fmt.Fprintf(&b, " header %q", h.Name+": "+h.Value)
			}
			if len(r.Status) > 0 {
				var ss []string
				for _, s := range r.Status {
					ss = append(ss, s.String())
				}
				fmt.Fprintf(&b, " expect status %s", strings.Join(ss, ","))
			}
			if r.Expect != "" {
				fmt.Fprintf(&b, " expect string %q", r.Expect)
			}
			if r.ExpectRegex != "" {
				fmt.Fprintf(&b, " expect rstring %q", r.ExpectRegex)
			}
		}
	case CheckTCPExpect:
		fmt.Fprintf(&b, " send %q expect %q", c.Send, c.Expect)
	case CheckSequence:
		for _, s := range c.Steps {
			b.WriteString(", ")
			b.WriteString(s.describe())
		}
	case CheckSMTP:
		fmt.Fprintf(&b, " EHLO %s", cmp.Or(c.Domain, "localhost"))
	case CheckMySQL, CheckPgSQL:
		if c.User != "" {
			fmt.Fprintf(&b, " user %s", c.User)
		}
		if c.Database != "" {
			fmt.Fprintf(&b, " database %s", c.Database)
		}
	case CheckRedis:
		if c.Role != "" {
			fmt.Fprintf(&b, " role %s", c.Role)
		}
	case CheckCommand:
		fmt.Fprintf(&b, " command %q", strings.Join(c.Command, " "))
	}
	durs := []struct {
		n string
		d time.Duration
	}{{"inter", c.Interval}, {"fast", c.FastInterval}, {"down", c.DownInterval}, {"timeout", c.Timeout}}
	for _, d := range durs {
		if d.d != 0 {
			fmt.Fprintf(&b, " %s %s", d.n, d.d)
		}
	}
	fmt.Fprintf(&b, " rise %d fall %d", c.Rise, c.Fall)
	if c.MaxRead != 0 {
		fmt.Fprintf(&b, " max-read %d", c.MaxRead)
	}
	return b.String()
}

func (s CheckStep) describe() string {
	switch {
	case s.Connect:
		d := "connect"
		if s.Port != 0 {
			d += fmt.Sprintf(" port %d", s.Port)
		}
		if s.NoTLS {
			d += " no-tls"
		}
		return d
	case s.Send != nil:
		return "send " + quoteBytes(s.Send)
	case s.Expect != nil:
		return "expect " + quoteBytes(s.Expect)
	}
	return fmt.Sprintf("expect rstring %q", s.ExpectRegex)
}

// quoteBytes shows text quoted and anything else in hex (HAProxy's binary).
func quoteBytes(b []byte) string {
	for _, c := range b {
		if c < 0x20 && c != '\r' && c != '\n' && c != '\t' || c >= 0x7f {
			return "binary " + hex.EncodeToString(b)
		}
	}
	return strconv.Quote(string(b))
}

// readFileBounded reads a small file (a CA bundle, a key) whole, refusing
// anything larger than max.
func readFileBounded(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, max)
	}
	return b, nil
}
