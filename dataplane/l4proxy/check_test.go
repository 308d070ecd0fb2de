package l4proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer accepts on loopback and runs handle for every connection,
// until the test ends.
func fakeServer(t testing.TB, handle func(c net.Conn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { mu.Lock(); delete(conns, c); mu.Unlock(); c.Close() }()
				handle(c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// runCheck runs one check of ck (with its defaults) against target.
func runCheck(t testing.TB, ck Check, target netip.AddrPort) (bool, string) {
	t.Helper()
	if err := (Config{Services: []Service{{Name: "s", Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")},
		Servers: []Server{{Name: "a", Addr: target}}, Check: &ck}}}).Validate(); err != nil {
		t.Fatalf("check %+v: %v", ck, err)
	}
	c := ck.WithDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	return checkerFor(c)(ctx, checkTarget(target, c), &server{name: "a"})
}

// endless writes prefix, then filler until the peer goes away.
func endless(prefix, filler string) func(c net.Conn) {
	chunk := bytes.Repeat([]byte(filler), 32<<10/len(filler))
	return func(c net.Conn) {
		_, _ = c.Read(make([]byte, 4096)) // the request
		if _, err := io.WriteString(c, prefix); err != nil {
			return
		}
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}
}

// TestHTTPCheckBoundedReads: a backend that sends a status line, headers
// or a body without end fails its check with the reason, and the check
// allocates a bounded amount (without the bounds, the status line alone
// is read until the timeout: hundreds of MB on loopback).
func TestHTTPCheckBoundedReads(t *testing.T) {
	for _, tt := range []struct {
		name, prefix, filler string
		ck                   Check
		want                 string
	}{
		{"status line", "HTTP/1.1 200 ", "a", Check{Type: CheckHTTP}, "status line longer than 8192 bytes"},
		{"one header line", "HTTP/1.1 200 OK\r\nX-A: ", "a", Check{Type: CheckHTTP, Expect: "alive"}, "header line longer than 8192 bytes"},
		{"endless headers", "HTTP/1.1 200 OK\r\n", "X-A: a\r\n", Check{Type: CheckHTTP, Expect: "alive"}, "headers longer than 65536 bytes"},
		{"endless body", "HTTP/1.1 200 OK\r\n\r\n", "a", Check{Type: CheckHTTP, Expect: "alive"}, `body lacks "alive" (16384 bytes searched)`},
		{"endless chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "4\r\naaaa\r\n", Check{Type: CheckHTTP, Expect: "alive"}, `body lacks "alive"`},
		{"endless reply to an expect", "", "a", Check{Type: CheckTCPExpect, Send: "hello\r\n", Expect: "alive"}, `expect "alive" not found in the first 16384 bytes`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := fakeServer(t, endless(tt.prefix, tt.filler))
			tt.ck.Timeout = 5 * time.Second
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			ok, detail := runCheck(t, tt.ck, target)
			runtime.ReadMemStats(&after)
			if ok || !strings.Contains(detail, tt.want) {
				t.Errorf("check: ok=%v %q, want a failure with %q", ok, detail, tt.want)
			}
			// The test's own server allocates its 32 KiB chunk; the check
			// its buffers. Everything else would be the backend's data.
			grew := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: %d bytes allocated", detail, grew)
			if grew > 1<<20 {
				t.Errorf("the check allocated %d bytes, want < 1 MiB", grew)
			}
		})
	}
}

// closedPort is a port on 127.0.0.1 that nothing listens on.
func closedPort(t testing.TB) uint16 {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort().Port()
}

// TestCheckPortAndAddressOverride: the service port answers but the check
// port is closed, so the server is down (Patroni's port 8008); an open
// check port keeps it up; a check address and port that answer bring up a
// server whose own address is dead.
func TestCheckPortAndAddressOverride(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	health := fakeServer(t, func(c net.Conn) {})
	dead := freePort(t) // nothing listens there
	bind := freePort(t)
	fast := func(ck Check) *Check {
		ck.Type, ck.Interval, ck.Timeout, ck.Rise, ck.Fall = CheckTCP, 20*time.Millisecond, 2*time.Second, 1, 2
		return &ck
	}
	p := newTestPool(t, Options{}, Config{Services: []Service{
		{Name: "closed-check-port", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1)}, Check: fast(Check{Port: closedPort(t)})},
		{Name: "open-check-port", Binds: []netip.AddrPort{freePort(t)}, Servers: []Server{srvCfg(a, 1)}, Check: fast(Check{Port: health.Port()})},
		{Name: "check-elsewhere", Binds: []netip.AddrPort{freePort(t)}, Servers: []Server{{Name: "dead", Addr: dead, Weight: 1}},
			Check: fast(Check{Address: health.Addr(), Port: health.Port()})},
	}})
	if _, err := roundTrip(bind, "hello"); err != nil {
		t.Fatalf("the service port does not answer: %v", err)
	}
	eventually(t, 10*time.Second, "server down by its closed check port", func() bool {
		return serverStats(p, "closed-check-port", "a").Status == "DOWN"
	})
	eventually(t, 10*time.Second, "checks on the open port and the other address", func() bool {
		return serverStats(p, "open-check-port", "a").Check == "L4 ok" && serverStats(p, "check-elsewhere", "dead").Check == "L4 ok"
	})
	for svc, srv := range map[string]string{"open-check-port": "a", "check-elsewhere": "dead"} {
		if st := serverStats(p, svc, srv); st.Status != "UP" {
			t.Errorf("%s: %+v, want UP", svc, st)
		}
	}
}

// fakeRedis answers PING and INFO replication as a master or a replica.
func fakeRedis(role string) func(c net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch strings.TrimSpace(line) {
			case "PING":
				io.WriteString(c, "+PONG\r\n")
			case "INFO replication":
				info := "# Replication\r\nrole:" + role + "\r\nconnected_slaves:0\r\n"
				io.WriteString(c, "$"+itoa(len(info))+"\r\n"+info+"\r\n")
			default:
				io.WriteString(c, "-ERR unknown command\r\n")
			}
		}
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// TestRedisMasterOnly: of a master and a replica, only the master stays up,
// with HAProxy's tcp-check sequence and with the redis check and its role.
func TestRedisMasterOnly(t *testing.T) {
	t.Parallel()
	master, replica := fakeServer(t, fakeRedis("master")), fakeServer(t, fakeRedis("slave"))
	seq := &Check{Type: CheckSequence, Interval: 20 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 2, Steps: []CheckStep{
		{Send: []byte("PING\r\n")}, {Expect: []byte("+PONG")},
		{Send: []byte("INFO replication\r\n")}, {ExpectRegex: `role:master\r?\n`},
		{Send: []byte("QUIT\r\n")},
	}}
	role := &Check{Type: CheckRedis, Role: "master", Interval: 20 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 2}
	servers := []Server{{Name: "master", Addr: master, Weight: 1}, {Name: "replica", Addr: replica, Weight: 1}}
	p := newTestPool(t, Options{}, Config{Services: []Service{
		{Name: "seq", Binds: []netip.AddrPort{freePort(t)}, Servers: servers, Check: seq},
		{Name: "role", Binds: []netip.AddrPort{freePort(t)}, Servers: servers, Check: role},
	}})
	for _, svc := range []string{"seq", "role"} {
		eventually(t, 10*time.Second, svc+": replica down", func() bool { return serverStats(p, svc, "replica").Status == "DOWN" })
		if st := serverStats(p, svc, "master"); st.Status != "UP" {
			t.Errorf("%s: master %+v, want UP", svc, st)
		}
	}
	if d := serverStats(p, "role", "replica").Check; !strings.Contains(d, "role slave, want master") {
		t.Errorf("replica's check says %q, want its role", d)
	}
}

// selfSigned writes a CA-less self-signed certificate for 127.0.0.1 and
// "app.example" into dir; it returns the paths and the pair.
func selfSigned(t testing.TB, dir, name string) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"app.example"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pair
}

// TestTLSChecks: tcp and http checks against a self-signed server that asks
// for a client certificate (kubeadm's API server).
func TestTLSChecks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, _, serverPair := selfSigned(t, dir, "server")
	clientCert, clientKey, clientPair := selfSigned(t, dir, "client")
	_, _, otherPair := selfSigned(t, dir, "other")
	clients := x509.NewCertPool()
	clients.AddCert(clientPair.Leaf)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok from "+r.TLS.ServerName)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clients}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	target := srv.Listener.Addr().(*net.TCPAddr).AddrPort()
	otherCA := filepath.Join(dir, "other.crt")
	_ = otherPair

	withCert := &CheckTLS{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey}
	for _, tt := range []struct {
		name string
		ck   Check
		want bool
		why  string
	}{
		{"tcp, verify none", Check{Type: CheckTCP, TLS: &CheckTLS{Verify: "none"}}, true, "L6 ok"},
		{"tcp, CA file, the address as the name", Check{Type: CheckTCP, TLS: &CheckTLS{CAFile: caFile}}, true, "L6 ok"},
		{"tcp, SNI in the certificate", Check{Type: CheckTCP, TLS: &CheckTLS{CAFile: caFile, ServerName: "app.example"}}, true, "L6 ok"},
		{"tcp, SNI not in the certificate", Check{Type: CheckTCP, TLS: &CheckTLS{CAFile: caFile, ServerName: "db.example"}}, false, "TLS handshake"},
		{"tcp, another CA", Check{Type: CheckTCP, TLS: &CheckTLS{CAFile: otherCA}}, false, "TLS handshake"},
		{"tcp, system roots", Check{Type: CheckTCP, TLS: &CheckTLS{}}, false, "TLS handshake"},
		{"tcp, missing CA file", Check{Type: CheckTCP, TLS: &CheckTLS{CAFile: filepath.Join(dir, "nope")}}, false, "ca_file"},
		{"plain tcp to a TLS port still connects", Check{Type: CheckTCP}, true, "L4 ok"},
		{"http without a client certificate", Check{Type: CheckHTTP, TLS: &CheckTLS{CAFile: caFile}}, false, "status 401"},
		{"http with a client certificate and SNI", Check{Type: CheckHTTP, Host: "app.example", Expect: "ok from app.example", TLS: withCert}, true, "body matches"},
		{"tcp-check over TLS", Check{Type: CheckSequence, TLS: withCert, Steps: []CheckStep{
			{Send: []byte("GET / HTTP/1.0\r\n\r\n")}, {ExpectRegex: `^HTTP/1\.[01] 200`}}}, true, "L7 ok"},
		{"plain http to a TLS port", Check{Type: CheckHTTP}, false, "status 400"},
	} {
		ok, detail := runCheck(t, tt.ck, target)
		if ok != tt.want || !strings.Contains(detail, tt.why) {
			t.Errorf("%s: ok=%v %q, want %v with %q", tt.name, ok, detail, tt.want, tt.why)
		}
	}
}

// TestHTTPRequestsStatusHeaders: several requests must all pass, statuses
// as a list of ranges, request headers sent.
func TestHTTPRequestsStatusHeaders(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ready":
			if r.Header.Get("X-Check") != "gitgw" {
				http.Error(w, "no header", http.StatusForbidden)
				return
			}
			io.WriteString(w, `{"state":"running"}`)
		case "/moved":
			http.Redirect(w, r, "/ready", http.StatusFound)
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	target := srv.Listener.Addr().(*net.TCPAddr).AddrPort()
	hdr := []Header{{Name: "X-Check", Value: "gitgw"}}
	for _, tt := range []struct {
		name string
		ck   Check
		want bool
		why  string
	}{
		{"header sent", Check{Type: CheckHTTP, Path: "/ready", Headers: hdr, ExpectRegex: `"state":\s*"running"`}, true, "body matches"},
		{"header missing", Check{Type: CheckHTTP, Path: "/ready"}, false, "status 403"},
		{"302 outside 200-299 (keepalived's default)", Check{Type: CheckHTTP, Path: "/moved", Status: []StatusRange{{Lo: 200, Hi: 299}}}, false, "status 302"},
		{"302 in a list", Check{Type: CheckHTTP, Path: "/moved", Status: []StatusRange{{Lo: 200, Hi: 200}, {Lo: 300, Hi: 399}}}, true, "status 302"},
		{"418 in a range", Check{Type: CheckHTTP, Path: "/teapot", Status: []StatusRange{{Lo: 400, Hi: 418}}}, true, "status 418"},
		{"all requests pass", Check{Type: CheckHTTP, Requests: []HTTPRequest{
			{Path: "/ready", Headers: hdr, Expect: "running"}, {Path: "/teapot", Status: []StatusRange{{Lo: 418, Hi: 418}}}}}, true, "2 requests ok"},
		{"the second request fails", Check{Type: CheckHTTP, Requests: []HTTPRequest{
			{Path: "/ready", Headers: hdr}, {Path: "/missing"}}}, false, "request 2 (GET /missing): L7 status 404"},
	} {
		ok, detail := runCheck(t, tt.ck, target)
		if ok != tt.want || !strings.Contains(detail, tt.why) {
			t.Errorf("%s: ok=%v %q, want %v with %q", tt.name, ok, detail, tt.want, tt.why)
		}
	}
}

// Minimal protocol speakers: what each server says first or answers.

func fakeSMTP(greeting, ehlo string) func(c net.Conn) {
	return func(c net.Conn) {
		io.WriteString(c, greeting)
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(line, "EHLO gw.example\r\n"):
				io.WriteString(c, ehlo)
			case strings.HasPrefix(line, "QUIT"):
				io.WriteString(c, "221 bye\r\n")
				return
			default:
				io.WriteString(c, "500 what\r\n")
			}
		}
	}
}

func mysqlPkt(seq byte, payload []byte) []byte {
	return append([]byte{byte(len(payload)), byte(len(payload) >> 8), byte(len(payload) >> 16), seq}, payload...)
}

// fakeMySQL sends a protocol-10 handshake (or an error) and accepts the
// login of user "haproxy" only.
func fakeMySQL(blocked bool) func(c net.Conn) {
	return func(c net.Conn) {
		if blocked {
			c.Write(mysqlPkt(0, append([]byte{0xff, 0x69, 0x04}, "Host '127.0.0.1' is blocked"...)))
			return
		}
		hs := append([]byte{10}, "8.0.36-fake\x00"...)
		hs = append(hs, make([]byte, 40)...)
		c.Write(mysqlPkt(0, hs))
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		body := make([]byte, int(hdr[0])|int(hdr[1])<<8)
		if _, err := io.ReadFull(c, body); err != nil || len(body) < 33 {
			return
		}
		user, _, _ := bytes.Cut(body[32:], []byte{0})
		switch string(user) {
		case "haproxy":
			c.Write(mysqlPkt(2, []byte{0, 0, 0, 2, 0, 0, 0}))
		case "switch": // MySQL 8 asking for another authentication method
			c.Write(mysqlPkt(2, append([]byte{0xfe}, "caching_sha2_password\x00"...)))
		default:
			c.Write(mysqlPkt(2, append([]byte{0xff, 0x15, 0x04, '#', '2', '8', '0', '0', '0'}, "Access denied for user"...)))
		}
		io.Copy(io.Discard, c)
	}
}

// fakePgSQL reads a startup message and asks for a password (R) when the
// user is "app", else answers a FATAL error (E).
func fakePgSQL(c net.Conn) {
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return
	}
	msg := make([]byte, binary.BigEndian.Uint32(n[:])-4)
	if _, err := io.ReadFull(c, msg); err != nil || binary.BigEndian.Uint32(msg) != 3<<16 {
		return
	}
	if bytes.Contains(msg, []byte("user\x00app\x00")) {
		c.Write([]byte{'R', 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4}) // MD5 password
		return
	}
	fields := []byte("SFATAL\x00C28000\x00Mrole \"nobody\" does not exist\x00\x00")
	c.Write(append(binary.BigEndian.AppendUint32([]byte{'E'}, uint32(4+len(fields))), fields...))
}

// fakeLDAP answers an anonymous bind with result code code.
func fakeLDAP(code byte) func(c net.Conn) {
	return func(c net.Conn) {
		req := make([]byte, 14)
		if _, err := io.ReadFull(c, req); err != nil || req[5] != 0x60 {
			return
		}
		c.Write([]byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, code, 0x04, 0x00, 0x04, 0x00})
		io.Copy(io.Discard, c)
	}
}

// TestProtocolChecks runs each protocol check against a server that
// speaks enough of it to pass, and one that refuses.
func TestProtocolChecks(t *testing.T) {
	t.Parallel()
	smtpOK := fakeServer(t, fakeSMTP("220-mx.example ESMTP\r\n220 ready\r\n", "250-mx.example\r\n250 PIPELINING\r\n"))
	smtpBusy := fakeServer(t, fakeSMTP("554 no service\r\n", ""))
	smtpNoEHLO := fakeServer(t, fakeSMTP("220 ready\r\n", "502 not implemented\r\n"))
	redis := fakeServer(t, fakeRedis("master"))
	redisAuth := fakeServer(t, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 64))
		io.WriteString(c, "-NOAUTH Authentication required.\r\n")
	})
	mysql, mysqlBlocked := fakeServer(t, fakeMySQL(false)), fakeServer(t, fakeMySQL(true))
	pg := fakeServer(t, fakePgSQL)
	ldapOK, ldapDenied := fakeServer(t, fakeLDAP(0)), fakeServer(t, fakeLDAP(49))
	for _, tt := range []struct {
		name   string
		ck     Check
		target netip.AddrPort
		want   bool
		why    string
	}{
		{"smtp", Check{Type: CheckSMTP, Domain: "gw.example"}, smtpOK, true, "L7 ok"},
		{"smtp 554", Check{Type: CheckSMTP, Domain: "gw.example"}, smtpBusy, false, `SMTP greeting: "554 no service", want 220`},
		{"smtp EHLO refused", Check{Type: CheckSMTP, Domain: "gw.example"}, smtpNoEHLO, false, "SMTP EHLO"},
		{"redis", Check{Type: CheckRedis}, redis, true, "L7 ok"},
		{"redis role", Check{Type: CheckRedis, Role: "slave"}, redis, false, "role master, want slave"},
		{"redis with auth", Check{Type: CheckRedis}, redisAuth, false, "NOAUTH"},
		{"mysql handshake", Check{Type: CheckMySQL}, mysql, true, "L7 ok"},
		{"mysql login", Check{Type: CheckMySQL, User: "haproxy"}, mysql, true, "L7 ok"},
		{"mysql login refused", Check{Type: CheckMySQL, User: "root"}, mysql, false, "Access denied"},
		{"mysql auth switch", Check{Type: CheckMySQL, User: "switch"}, mysql, false, "reply 0xfe, want OK"},
		{"mysql blocked", Check{Type: CheckMySQL}, mysqlBlocked, false, "is blocked"},
		{"pgsql", Check{Type: CheckPgSQL, User: "app", Database: "app"}, pg, true, "L7 ok"},
		{"pgsql unknown role", Check{Type: CheckPgSQL, User: "nobody"}, pg, false, `role \"nobody\" does not exist`},
		{"ldap", Check{Type: CheckLDAP}, ldapOK, true, "L7 ok"},
		{"ldap denied", Check{Type: CheckLDAP}, ldapDenied, false, "result code 49"},
		{"smtp against redis", Check{Type: CheckSMTP, Timeout: 300 * time.Millisecond}, redis, false, "expect 220 greeting"},
	} {
		ok, detail := runCheck(t, tt.ck, tt.target)
		if ok != tt.want || !strings.Contains(detail, tt.why) {
			t.Errorf("%s: ok=%v %q, want %v with %q", tt.name, ok, detail, tt.want, tt.why)
		}
	}
}

// TestCheckValidate: what a site could get wrong is refused, all at once.
func TestCheckValidate(t *testing.T) {
	ck := Check{Type: CheckHTTP, MaxRead: 2 << 20, TLS: &CheckTLS{Verify: "maybe", CertFile: "c.pem"},
		Headers: []Header{{Name: "X-A", Value: "b\r\nInjected: yes"}}, ExpectRegex: "(", Status: []StatusRange{{Lo: 200, Hi: 700}}}
	err := Config{Services: []Service{{Name: "s", Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")},
		Check: &ck}}}.Validate()
	for _, want := range []string{"max read", `tls verify "maybe"`, "both cert_file and key_file",
		`header "X-A"`, "expect_regex: error parsing regexp", "status 200-700 out of 100..599"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want %q", err, want)
		}
	}
	seq := Check{Type: CheckSequence, Steps: []CheckStep{{Send: []byte("a"), Expect: []byte("b")}, {ExpectRegex: "[z-a]"}}}
	err = Config{Services: []Service{{Name: "s", Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")},
		Check: &seq}}}.Validate()
	for _, want := range []string{"step 0: want exactly one", "step 1: expect_regex"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want %q", err, want)
		}
	}
	my := Check{Type: CheckMySQL, TLS: &CheckTLS{}}
	if err := (Config{Services: []Service{{Name: "s", Binds: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")},
		Check: &my}}}).Validate(); err == nil || !strings.Contains(err.Error(), "tls does not apply to a mysql check") {
		t.Errorf("tls on mysql: %v", err)
	}
}

// TestCommandCheckOutputBounded: a command that prints without end keeps
// only the start of its output; one that leaves a child holding its output
// ends with its timeout.
func TestCommandCheckOutputBounded(t *testing.T) {
	t.Parallel()
	ok, detail := runCheck(t, Check{Type: CheckCommand, Command: []string{"sh", "-c", "head -c 10000000 /dev/zero | tr '\\0' a; exit 3"}},
		netip.MustParseAddrPort("127.0.0.1:1"))
	if ok || len(detail) > 2048 || !strings.Contains(detail, "exit status 3") {
		t.Errorf("command: ok=%v, %d bytes of detail: %.200q", ok, len(detail), detail)
	}
	start := time.Now()
	ok, detail = runCheck(t, Check{Type: CheckCommand, Timeout: 200 * time.Millisecond, Command: []string{"sh", "-c", "sleep 6 & sleep 6"}},
		netip.MustParseAddrPort("127.0.0.1:1"))
	if took := time.Since(start); ok || took > 5*time.Second {
		t.Errorf("command with a child holding its output: ok=%v %q after %v", ok, detail, took)
	}
}
