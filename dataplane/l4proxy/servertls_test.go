package l4proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pool    *x509.CertPool
	pemFile string
}

func newTestCA(t testing.TB, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, pool: x509.NewCertPool(), pemFile: filepath.Join(dir, name+".pem")}
	ca.pool.AddCert(cert)
	if err := os.WriteFile(ca.pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue signs a leaf for names (server and client use) and writes it and
// its key to dir; it returns the files and the pair.
func (ca *testCA) issue(t testing.TB, dir, name string, names ...string) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: names, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
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

// serveTLSEcho serves TLS on ln: each connection first gets a line naming
// the SNI it sent and the client certificate's subject ("sni=… client=…"),
// then everything it sends echoed, and a close once it has shut its side.
// The line ends with " resumed" when the client resumed a session.
func serveTLSEcho(ln net.Listener, cfg *tls.Config) {
	tl := tls.NewListener(ln, cfg)
	for {
		c, err := tl.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			tc := c.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
			if err := tc.Handshake(); err != nil {
				return
			}
			st := tc.ConnectionState()
			client := "-"
			if len(st.PeerCertificates) > 0 {
				client = st.PeerCertificates[0].Subject.CommonName
			}
			resumed := ""
			if st.DidResume {
				resumed = " resumed"
			}
			fmt.Fprintf(tc, "sni=%s client=%s alpn=%s%s\n", cmpOr(st.ServerName, "-"), client, cmpOr(st.NegotiatedProtocol, "-"), resumed)
			_, _ = io.Copy(tc, tc)
		}()
	}
}

func cmpOr(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// TestServerTLSNetns runs the pool (the helper process) in a namespace
// in front of TLS servers of a test CA: verify required with the right CA
// passes and sends the SNI; the wrong CA, or a name the certificate does
// not hold, fails the handshake, the client's connection is closed with
// nothing sent, and the failures count as connect errors (retried);
// verify none takes a self-signed server; a client certificate reaches a
// server that requires one; bytes go both ways through the TLS side, and
// a client's half-close reaches the server as the end of its stream.
func TestServerTLSNetns(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip")
	t.Parallel()
	dir := t.TempDir()
	ca, other := newTestCA(t, dir, "ca"), newTestCA(t, dir, "other-ca")
	_, _, srvPair := ca.issue(t, dir, "api", "api.example.test")
	cliCert, cliKey, _ := ca.issue(t, dir, "gateway", "gateway.example.test")
	_, _, selfPair := selfSigned(t, dir, "self")

	ns := lab.NewNetns(t, "h3tls")
	peer := lab.NewNetns(t, "h3tlp")
	lab.Veth(t, ns, "eth0", "198.51.100.1/24", peer, "eth0", "198.51.100.2/24")
	listen := func(port int, cfg *tls.Config) netip.AddrPort {
		ap := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), uint16(port))
		var ln net.Listener
		if err := ns.Do(func() error {
			var err error
			ln, err = net.Listen("tcp4", ap.String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go serveTLSEcho(ln, cfg)
		return ap
	}
	api := listen(8443, &tls.Config{Certificates: []tls.Certificate{srvPair}, NextProtos: []string{"h2", "http/1.1"}})
	self := listen(8444, &tls.Config{Certificates: []tls.Certificate{selfPair}})
	mtls := listen(8445, &tls.Config{Certificates: []tls.Certificate{srvPair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool})

	bind := func(port int) []netip.AddrPort {
		return []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), uint16(port))}
	}
	svc := func(name string, port int, addr netip.AddrPort, st *ServerTLS) Service {
		return Service{Name: name, Binds: bind(port), Retries: 1, Timeouts: Timeouts{Connect: 2 * time.Second},
			Servers: []Server{{Name: "s", Addr: addr, Weight: 1, TLS: st}}}
	}
	cfg := Config{Services: []Service{
		svc("good", 9001, api, &ServerTLS{CAFile: ca.pemFile, SNI: "api.example.test", ALPN: []string{"http/1.1"}}),
		svc("wrong-ca", 9002, api, &ServerTLS{Verify: VerifyRequired, CAFile: other.pemFile, SNI: "api.example.test"}),
		svc("wrong-name", 9003, api, &ServerTLS{CAFile: ca.pemFile, SNI: "db.example.test"}),
		svc("chain-only", 9004, api, &ServerTLS{CAFile: ca.pemFile}),
		svc("none", 9005, self, &ServerTLS{Verify: VerifyNone}),
		svc("client-cert", 9006, mtls, &ServerTLS{CAFile: ca.pemFile, SNI: "api.example.test", CertFile: cliCert, KeyFile: cliKey}),
		svc("no-client-cert", 9007, mtls, &ServerTLS{CAFile: ca.pemFile, SNI: "api.example.test"}),
		svc("no-reuse", 9008, api, &ServerTLS{CAFile: ca.pemFile, SNI: "api.example.test", NoReuse: true}),
	}}
	h := startHelperWith(t, func(name string, args ...string) *exec.Cmd {
		return ns.Command(context.Background(), name, args...)
	}, cfg)

	// exchange connects to the service, reads the server's first line,
	// sends payload, shuts its side and reads the echo to the end.
	exchange := func(port int, payload []byte) (first string, echo []byte, err error) {
		err = ns.Do(func() error {
			c, err := net.DialTimeout("tcp4", bind(port)[0].String(), 5*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			r := bufio.NewReader(c)
			if first, err = r.ReadString('\n'); err != nil {
				return fmt.Errorf("first line: %w", err)
			}
			first = strings.TrimSpace(first)
			go func() {
				_, _ = c.Write(payload)
				_ = c.(*net.TCPConn).CloseWrite()
			}()
			echo, err = io.ReadAll(r)
			return err
		})
		return first, echo, err
	}
	payload := make([]byte, 1<<20)
	_, _ = rand.Read(payload)
	for _, tc := range []struct {
		port int
		want string
	}{
		{9001, "sni=api.example.test client=- alpn=http/1.1"},
		{9004, "sni=- client=- alpn=-"},
		{9005, "sni=- client=- alpn=-"},
		{9006, "sni=api.example.test client=gateway alpn=-"},
	} {
		first, echo, err := exchange(tc.port, payload)
		if err != nil {
			t.Errorf("port %d: %v", tc.port, err)
			continue
		}
		if first != tc.want {
			t.Errorf("port %d: the server saw %q, want %q", tc.port, first, tc.want)
		}
		if len(echo) != len(payload) || string(echo) != string(payload) {
			t.Errorf("port %d: %d bytes echoed of %d sent, or different", tc.port, len(echo), len(payload))
		}
	}
	// The next connection resumes the session the first one got (each
	// server keeps a session cache); "no-reuse" never does.
	if first, _, err := exchange(9001, []byte("again")); err != nil || first != "sni=api.example.test client=- alpn=http/1.1 resumed" {
		t.Errorf("second connection: the server saw %q (%v), want a resumed session", first, err)
	}
	for range 2 {
		if first, _, err := exchange(9008, []byte("x")); err != nil || first != "sni=api.example.test client=- alpn=-" {
			t.Errorf("no-reuse: the server saw %q (%v), want a full handshake", first, err)
		}
	}
	for _, port := range []int{9002, 9003, 9007} {
		first, _, err := exchange(port, []byte("x"))
		if err == nil {
			t.Errorf("port %d: reached the server (%q) through a handshake that must fail", port, first)
		}
	}
	// The proxy counts a connection's bytes as it closes it, after the
	// client has read its end: wait until no service holds a connection
	// (a service's current drops after its bytes are added).
	var snap Snapshot
	for deadline := time.Now().Add(10 * time.Second); ; {
		snap = helperStatsIn(t, ns, h.stats)
		busy := 0
		for _, s := range snap.Services {
			busy += int(s.Current)
		}
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open 10 s after the last exchange", busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, s := range snap.Services {
		sv := s.Servers[0]
		switch s.Name {
		case "wrong-ca", "wrong-name":
			// Retries 1: two attempts, both refused by our side's verification.
			if sv.ConnectErrors != 2 || sv.Total != 0 || sv.BytesIn != 0 {
				t.Errorf("%s: connect errors %d, total %d, bytes in %d; want 2, 0, 0", s.Name, sv.ConnectErrors, sv.Total, sv.BytesIn)
			}
		case "no-client-cert":
			// TLS 1.3: the server refuses the missing certificate after
			// our side has finished, so the client is cut in data; either
			// way nothing of the server reached it and it counts.
			if sv.Total+sv.ConnectErrors == 0 {
				t.Errorf("%s: no attempt counted", s.Name)
			}
		case "chain-only", "none", "client-cert":
			if sv.ConnectErrors != 0 || sv.Total != 1 || sv.BytesIn != int64(len(payload)) || sv.BytesOut < int64(len(payload)) {
				t.Errorf("%s: connect errors %d, total %d, bytes in %d out %d", s.Name, sv.ConnectErrors, sv.Total, sv.BytesIn, sv.BytesOut)
			}
		case "good":
			if sv.ConnectErrors != 0 || sv.Total != 2 || sv.BytesIn != int64(len(payload))+5 {
				t.Errorf("%s: connect errors %d, total %d, bytes in %d out %d", s.Name, sv.ConnectErrors, sv.Total, sv.BytesIn, sv.BytesOut)
			}
		}
	}
}

// helperStatsIn is snapshotIn, failing the test when the stats cannot be
// read.
func helperStatsIn(t *testing.T, ns *lab.Netns, addr string) Snapshot {
	t.Helper()
	snap, err := snapshotIn(ns, addr)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestServerTLSFiles: a CA file that cannot be read fails Set with the
// service, the server and the field named, and the pool keeps running the
// configuration it ran; a bad form is refused by Validate.
func TestServerTLSFiles(t *testing.T) {
	b := newBackend(t, "a")
	bind := freePort(t)
	good := Config{Services: []Service{{Name: "web", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(b, 1)}}}}
	p := newTestPool(t, Options{}, good)
	bad := cloneConfig(good)
	bad.Services[0].Servers[0].TLS = &ServerTLS{CAFile: filepath.Join(t.TempDir(), "missing.pem")}
	err := p.Set(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), `service "web": server "a": tls ca_file`) {
		t.Fatalf("Set with a missing CA file: %v", err)
	}
	if a := p.Applied(); a.Services[0].Servers[0].TLS != nil {
		t.Errorf("the failed config was applied: %+v", a.Services[0].Servers[0])
	}
	if got, err := roundTrip(bind, "hi"); err != nil || got != "a" {
		t.Errorf("after the failed Set the service answers %q, %v; want the last good state (a)", got, err)
	}
	form := cloneConfig(good)
	form.Services[0].Servers[0].TLS = &ServerTLS{Verify: "optional", CertFile: "/c.pem", SNI: "not a name"}
	err = form.Validate()
	for _, want := range []string{`tls verify "optional"`, "needs both cert_file and key_file", "tls sni"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want %q", err, want)
		}
	}
}

// TestServerTLSTimeouts: a server that takes the TCP connection but never
// answers the handshake fails the attempt once the connect timeout is
// spent (a connect timeout, counted, retried on the next server with
// redispatch); an established TLS connection idle past the server timeout
// is closed by the reaper like any other; shutdown-sessions style aborts
// (the pool closing) reach a connection waiting in its handshake.
func TestServerTLSTimeouts(t *testing.T) {
	mute, err := net.Listen("tcp4", "127.0.0.1:0") // accepts, never speaks
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mute.Close() })
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	_, _, pair := selfSigned(t, t.TempDir(), "echo")
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveTLSEcho(ln, &tls.Config{Certificates: []tls.Certificate{pair}})

	none := &ServerTLS{Verify: VerifyNone}
	bind, idle := freePort(t), freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{
		{Name: "web", Binds: []netip.AddrPort{bind}, Retries: 1, Redispatch: true, Balance: First,
			Timeouts: Timeouts{Connect: 300 * time.Millisecond},
			Servers: []Server{
				{Name: "mute", Addr: mute.Addr().(*net.TCPAddr).AddrPort(), Weight: 1, TLS: none},
				{Name: "echo", Addr: ln.Addr().(*net.TCPAddr).AddrPort(), Weight: 1, TLS: none},
			}},
		{Name: "idle", Binds: []netip.AddrPort{idle}, Timeouts: Timeouts{Server: 300 * time.Millisecond},
			Servers: []Server{{Name: "echo", Addr: ln.Addr().(*net.TCPAddr).AddrPort(), Weight: 1, TLS: none}}},
	}})
	// First picks mute; its handshake times out, the retry goes to echo.
	c, err := net.DialTimeout("tcp4", bind.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	t0 := time.Now()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "sni=-") {
		t.Fatalf("through the retry: %q %v", line, err)
	}
	if took := time.Since(t0); took < 300*time.Millisecond {
		t.Errorf("answered after %v: the mute server's handshake did not wait for the connect timeout", took)
	}
	if st := serverStats(p, "web", "mute"); st.ConnectErrors != 1 || st.Total != 0 {
		t.Errorf("mute: connect errors %d, total %d; want 1, 0", st.ConnectErrors, st.Total)
	}
	if st := serverStats(p, "web", "echo"); st.Total != 1 || st.Retries != 1 {
		t.Errorf("echo: total %d, retries %d; want 1, 1", st.Total, st.Retries)
	}

	// Idle past the server timeout: the reaper closes it.
	ic, err := net.DialTimeout("tcp4", idle.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	_ = ic.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(ic)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "sni=-") {
		t.Fatalf("idle: %q %v", line, err)
	}
	t0 = time.Now()
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("idle connection got data")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("idle connection not closed by the server timeout: %v", err)
	}
	if took := time.Since(t0); took < 250*time.Millisecond {
		t.Errorf("closed after %v, before the server timeout", took)
	}
	eventually(t, 5*time.Second, "the idle connection counted as ended", func() bool {
		return serverStats(p, "idle", "echo").Current == 0
	})

	// A connection held in its handshake by the mute server ends when the
	// pool closes, well before its connect timeout would.
	p2 := newTestPool(t, Options{}, Config{Services: []Service{{Name: "mute", Binds: []netip.AddrPort{freePort(t)},
		Timeouts: Timeouts{Connect: time.Minute},
		Servers:  []Server{{Name: "mute", Addr: mute.Addr().(*net.TCPAddr).AddrPort(), Weight: 1, TLS: none}}}}})
	mc, err := net.DialTimeout("tcp4", p2.Applied().Services[0].Binds[0].String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	eventually(t, 5*time.Second, "the connection in its handshake", func() bool { return serverStats(p2, "mute", "mute").Current == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	t0 = time.Now()
	_ = p2.Close(ctx)
	if took := time.Since(t0); took > 10*time.Second {
		t.Errorf("Close took %v with a connection in its handshake", took)
	}
	_ = mc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := mc.Read(make([]byte, 1)); err == nil {
		t.Error("the client of a connection cut by Close read data")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("the client of a connection cut by Close was not closed")
	}
}
