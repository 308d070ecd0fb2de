package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/importer"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// Behaviour compared, not just text (issue #17, item 6): files of the
// import corpus run as they are, by HAProxy or keepalived, and as the site
// `gitgw import` makes of them, run by the real agent, side by side in
// namespaces against the same real servers. What is compared is what a
// client sees: which servers take the connections, which are taken out
// when one breaks, and which node answers on the VIP when a node dies.
//
// The copies differ from the corpus files only where the lab differs from
// the file's own network: addresses (into 198.51.100.0/24 and
// 203.0.113.0/24), interface names, paths of the machine (HAProxy's
// chroot, pid file and stats socket; a script standing for a check or a
// notify script the lab has not), and, for a second keepalived node, the
// priority and state the file's own guide gives the backup (or a lower
// one). HAProxy 1.x samples run with the keywords HAProxy 2.1 renamed
// (haproxy21), and a guide's "[...]" may stand for more servers.

const corpusRoot = "../../cue/importer/testdata/corpus"

// corpusCopy reads a corpus file and applies the rewrites (old, new pairs),
// each of which must match: a rewrite that matches nothing would leave the
// file's own network in the lab.
func corpusCopy(t *testing.T, path string, rewrites ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(rewrites); i += 2 {
		if !strings.Contains(s, rewrites[i]) {
			t.Fatalf("%s: rewrite %q matches nothing", path, rewrites[i])
		}
		s = strings.ReplaceAll(s, rewrites[i], rewrites[i+1])
	}
	return s
}

// labServer is a real server of the lab: an HTTP server answering every
// request with its name (through a TCP proxy as well as an HTTP one), over
// TLS when tlsConf is set (an API server behind a TCP proxy), and
// optionally a health port answering every request with a settable status
// (Patroni's REST API: 200 on the primary, 503 on a replica).
type labServer struct {
	name   string
	ln     net.Listener
	health net.Listener
	status atomic.Int32
	wg     sync.WaitGroup
}

func startLabServer(t *testing.T, ns *lab.Netns, spec labServerSpec, tlsConf *tls.Config) *labServer {
	t.Helper()
	s := &labServer{name: spec.name}
	s.status.Store(int32(spec.status))
	healthAddr := spec.health
	if err := ns.Do(func() error {
		var err error
		if s.ln, err = net.Listen("tcp4", spec.addr); err != nil {
			return err
		}
		if tlsConf != nil {
			s.ln = tls.NewListener(s.ln, tlsConf)
		}
		if healthAddr != "" {
			s.health, err = net.Listen("tcp4", healthAddr)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	serve := func(ln net.Listener, answer func() (int, string)) {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if l == "\r\n" || l == "\n" {
						break
					}
				}
				code, body := answer()
				fmt.Fprintf(c, "HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", code, len(body), body)
			}()
		}
	}
	s.wg.Add(1)
	go serve(s.ln, func() (int, string) { return 200, s.name })
	if s.health != nil {
		s.wg.Add(1)
		go serve(s.health, func() (int, string) { return int(s.status.Load()), "" })
	}
	t.Cleanup(s.stop)
	return s
}

// labTLS is a server configuration with a fresh self-signed certificate:
// the clients do not verify it (they compare where connections go).
func labTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lab"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// stop closes the server's ports: it breaks, connections are refused.
func (s *labServer) stop() {
	s.ln.Close()
	if s.health != nil {
		s.health.Close()
	}
	s.wg.Wait()
}

// spread makes n connections to addr from inside ns, each an HTTP request
// (over TLS when overTLS), and counts the servers that answer; failed
// connections count as "error".
func spread(t *testing.T, ns *lab.Netns, addr string, n int, overTLS bool) map[string]int {
	t.Helper()
	on := map[string]int{}
	for range n {
		var name string
		err := ns.Do(func() error {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return err
			}
			if overTLS {
				c = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"); err != nil {
				return err
			}
			b, err := io.ReadAll(c)
			if err != nil {
				return err
			}
			head, body, ok := strings.Cut(string(b), "\r\n\r\n")
			if !ok || !strings.HasPrefix(head, "HTTP/1.1 200") {
				return fmt.Errorf("answer %q", b)
			}
			name = body
			return nil
		})
		if err != nil {
			name = "error"
		}
		on[name]++
	}
	return on
}

// sameSpread says how two spreads of n connections differ: by more than
// 5 % of the connections for a server (balancing may start at another
// server; a weight swapped or a server lost differs by far more).
func sameSpread(a, b map[string]int, n int) error {
	names := map[string]bool{}
	for k := range a {
		names[k] = true
	}
	for k := range b {
		names[k] = true
	}
	for k := range names {
		if math.Abs(float64(a[k]-b[k])) > 0.05*float64(n) {
			return fmt.Errorf("%s took %d of %d connections through the original, %d through the imported site", k, a[k], n, b[k])
		}
	}
	return nil
}

// haproxyStat is HAProxy's view of its servers (`show stat`): "PROXY/SERVER"
// → status ("UP", "DOWN", "no check", or a transition "UP 1/3"); the proxy
// is the one holding the servers (a frontend's backend).
func haproxyStat(t *testing.T, sock string) (map[string]string, string) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err.Error()
	}
	defer c.Close()
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		return nil, err.Error()
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return nil, err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "# ") {
		return nil, string(b)
	}
	head := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	col := func(name string) int { return slices.Index(head, name) }
	px, sv, st, cs := col("pxname"), col("svname"), col("status"), col("check_status")
	out := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) <= max(px, sv, st, cs) || f[sv] == "FRONTEND" || f[sv] == "BACKEND" {
			continue
		}
		status := f[st]
		if f[cs] == "INI" || strings.HasPrefix(f[cs], "* ") {
			// The first check has not run yet, or is running.
			status += " (checking)"
		}
		out[f[px]+"/"+f[sv]] = status
	}
	return out, string(b)
}

// backendOf maps each frontend of an HAProxy file to its default_backend:
// the import names a service after its frontend, HAProxy's servers are the
// backend's.
func backendOf(cfg string) map[string]string {
	m := map[string]string{}
	frontend := ""
	for _, l := range strings.Split(cfg, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "#"):
		case l[0] != ' ' && l[0] != '\t':
			frontend = ""
			if f[0] == "frontend" && len(f) > 1 {
				frontend = f[1]
			}
		case f[0] == "default_backend" && len(f) > 1 && frontend != "":
			m[frontend] = f[1]
		}
	}
	return m
}

// haproxy21 rewrites the keywords of HAProxy 1.x that HAProxy 2.1 refuses
// into what its error message names instead (the corpus has HAProxy's own
// samples of that age): the original runs as HAProxy 1.x ran it, the
// import reads the file as it is. Header rewrites (reqadd, rspidel, …)
// are dropped: 2.1 replaced them by http-request rules, the import does
// not map them, and the lab's clients do not depend on them.
func haproxy21(cfg string) string {
	for _, r := range []struct{ re, to string }{
		{`(?m)^([ \t]*)contimeout([ \t])`, "${1}timeout connect${2}"},
		{`(?m)^([ \t]*)clitimeout([ \t])`, "${1}timeout client${2}"},
		{`(?m)^([ \t]*)srvtimeout([ \t])`, "${1}timeout server${2}"},
		{`(?m)^([ \t]*)redispatch[ \t]*$`, "${1}option redispatch"},
		{`(?m)^listen([ \t]+\S+)[ \t]+(\S+:\d+)[ \t]*$`, "listen${1}\n\tbind ${2}"},
		{`(?m)^[ \t]*(req|rsp)i?(del|add|rep|setbe|deny|allow|pass|tarpit)[ \t].*$`, ""},
	} {
		cfg = regexp.MustCompile(r.re).ReplaceAllString(cfg, r.to)
	}
	return cfg
}

// settled: no server of HAProxy's is between states or not yet checked.
func settled(m map[string]string) bool {
	if len(m) == 0 {
		return false
	}
	for _, s := range m {
		if s != "UP" && s != "DOWN" && s != "no check" {
			return false
		}
	}
	return true
}

// downIn lists the servers m marks down, sorted.
func downIn(m map[string]string) []string {
	var out []string
	for k, s := range m {
		if s == "DOWN" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// startOriginalHAProxy runs HAProxy on the copy cfg in ns, with its
// machine paths in a temporary directory and a stats socket for the test
// to read the servers' states; it returns the socket's path.
func startOriginalHAProxy(t *testing.T, ns *lab.Netns, cfg string) string {
	t.Helper()
	lab.RequireCommand(t, "haproxy")
	bin, _ := lab.LookPath("haproxy")
	dir := t.TempDir()
	sock := filepath.Join(dir, "stat.sock")
	cfg = regexp.MustCompile(`(?m)^\s*(chroot|pidfile|stats socket|log)\s.*$`).ReplaceAllString(cfg, "")
	cfg = regexp.MustCompile(`(?m)^global\s*$`).ReplaceAllString(cfg, "global\n  stats socket "+sock+" level admin")
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := ns.Try(bin, "-c", "-f", path); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	cmd := ns.Command(t.Context(), bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	nicEventually(t, 30*time.Second, "HAProxy's stats socket", func() (bool, string) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("haproxy exited: %v", err)
		default:
		}
		_, err := os.Stat(sock)
		return err == nil, fmt.Sprint(err)
	})
	return sock
}

// importedServers is the agent's view of its servers: "PROXY/SERVER" →
// UP, DOWN, …, with "(checking)" until a server's first check has run;
// the proxy is HAProxy's name for the service's servers (backends maps a
// frontend's service to its backend).
func importedServers(t *testing.T, sock string, backends map[string]string) (map[string]string, string) {
	st, out := kernStatus(t, sock)
	m := map[string]string{}
	for _, s := range st.Services {
		px := s.Name
		if b, ok := backends[px]; ok {
			px = b
		}
		for _, sv := range s.Servers {
			status := sv.Status
			// Not yet checked, unless never checked at all (unchecked:
			// HAProxy's servers without a check).
			if sv.LastCheck.IsZero() && status != "NOCHECK" {
				status += " (checking)"
			}
			m[px+"/"+sv.Name] = status
		}
	}
	return m, out
}

// haproxyCase is a corpus HAProxy file with its lab.
type haproxyCase struct {
	file     string
	rewrites []string
	servers  []labServerSpec
	// tls: the servers speak TLS (the file proxies TCP to them), and so
	// do the clients.
	tls bool
	// dial is where clients connect, on the gateway itself; local are
	// addresses both gateways hold (on lo) for the file's binds.
	dial  string
	local []string
	// breakIt is what happens to the servers when "a backend breaks";
	// broken, HAProxy's view of them ("PROXY/SERVER") once it has
	// noticed (right after the break, its view is still the one before:
	// the comparison waits for this one).
	breakIt func(s map[string]*labServer)
	broken  map[string]string
	// dispatch are the imported servers ("PROXY/SERVER") that stand for
	// a proxy's `dispatch` address, which HAProxy forwards to without
	// listing a server: not compared.
	dispatch []string
}

// labServerSpec is a server of a case: its name (as the file names the
// server), address, health address (empty: none) and first health status.
// Servers on the same address are one host.
type labServerSpec struct {
	name, addr, health string
	status             int
}

var haproxyCases = []haproxyCase{
	{
		// Patroni's HAProxy: the primary answers its REST API with 200,
		// a replica with 503; only the primary takes connections. When
		// the primary dies, the replica is promoted.
		file: "haproxy/patroni-haproxy.cfg",
		rewrites: []string{
			"127.0.0.1:5432", "198.51.100.21:5432",
			"127.0.0.1:5433", "198.51.100.22:5433",
		},
		servers: []labServerSpec{
			{"postgresql_127.0.0.1_5432", "198.51.100.21:5432", "198.51.100.21:15432", 200},
			{"postgresql_127.0.0.1_5433", "198.51.100.22:5433", "198.51.100.22:15433", 503},
		},
		dial: "127.0.0.1:5000",
		breakIt: func(s map[string]*labServer) {
			s["postgresql_127.0.0.1_5432"].stop()
			s["postgresql_127.0.0.1_5433"].status.Store(200)
		},
		broken: map[string]string{"bk_db/postgresql_127.0.0.1_5432": "DOWN", "bk_db/postgresql_127.0.0.1_5433": "UP"},
	},
	{
		// Data Plane API's sites fixture: weighted round robin, 30/70,
		// over two servers without checks; HTTP mode with redispatch.
		// When a server dies, HAProxy (no check) keeps trying it and
		// redispatches; so does the import (unchecked: true, warned):
		// the clients see the same.
		file: "haproxy/dataplaneapi-sites.cfg",
		rewrites: []string{
			"127.0.1.1:4567", "198.51.100.23:4567",
			"127.0.1.2:4567", "198.51.100.24:4567",
		},
		servers: []labServerSpec{
			{"www_server", "198.51.100.23:4567", "", 0},
			{"www_server_new", "198.51.100.24:4567", "", 0},
		},
		dial:    "127.0.0.1:9001",
		breakIt: func(s map[string]*labServer) { s["www_server"].stop() },
		broken:  map[string]string{"www_backend/www_server": "no check", "www_backend/www_server_new": "no check"},
	},
	{
		// The kubeadm HA guide's HAProxy: TCP to the API servers, checked
		// by an SSLv3 hello (option ssl-hello-chk: its httpchk lines are
		// overridden); a server answering TLS passes, one that stops is
		// taken out. The guide's "[...]" stands for the other control
		// plane nodes: the lab has a second one.
		file: "haproxy/kubeadm-ha-considerations.cfg",
		rewrites: []string{
			"192.168.0.41:6443", "198.51.100.41:6443",
			"# [...]", "server host2 198.51.100.42:6443 check",
		},
		servers: []labServerSpec{
			{"host1", "198.51.100.41:6443", "", 0},
			{"host2", "198.51.100.42:6443", "", 0},
		},
		tls:     true,
		dial:    "127.0.0.1:8443",
		breakIt: func(s map[string]*labServer) { s["host1"].stop() },
		broken:  map[string]string{"apiserverbackend/host1": "DOWN", "apiserverbackend/host2": "UP"},
	},
	{
		// HAProxy 1.1's sample: round robin with cookies (not mapped:
		// these clients send none), HTTP checks by OPTIONS (on /, on
		// /index.html, and OPTIONS * that the import runs as a command),
		// and backup servers. The clients use appli4-backup: inst1 takes
		// every connection while it is up, the backup inst2 when it
		// breaks (and inst1 is down in every listen that has it).
		file: "haproxy/haproxy-examples-haproxy.cfg",
		rewrites: []string{
			"192.168.34.23:8080", "198.51.100.51:8080",
			"192.168.34.32:8080", "198.51.100.52:8080",
			"192.168.34.27:8080", "198.51.100.53:8080",
			"192.168.34.42:8080", "198.51.100.54:8080",
			"192.168.114.56:", "198.51.100.56:",
			"192.168.114.57:80", "198.51.100.57:80",
			"192.168.135.17:80", "198.51.100.59:80",
		},
		servers: []labServerSpec{
			{"app1_1", "198.51.100.51:8080", "", 0},
			{"app1_2", "198.51.100.52:8080", "", 0},
			{"app1_3", "198.51.100.53:8080", "", 0},
			{"app1_4", "198.51.100.54:8080", "", 0},
			{"inst1", "198.51.100.56:80", "", 0},
			{"inst2", "198.51.100.56:81", "", 0},
			{"inst3", "198.51.100.57:80", "", 0},
		},
		dial:    "127.0.0.1:10004",
		breakIt: func(s map[string]*labServer) { s["inst1"].stop() },
		broken: map[string]string{
			"appli2-insert/inst1": "DOWN", "appli4-backup/inst1": "DOWN", "appli5-backup/inst1": "DOWN",
			"appli4-backup/inst2": "UP", "appli5-backup/inst3": "UP",
		},
		dispatch: []string{"appli3-relais/dispatch"},
	},
}

// TestImportBehaviourHAProxy runs each HAProxy case: the original HAProxy
// on one gateway, the imported site under the real agent on another,
// both on the servers' segment; the same clients on each. The spreads of
// 100 connections must match, before and after a server breaks, and the
// imported site must take out the servers HAProxy takes out (where the
// original checks at all).
func TestImportBehaviourHAProxy(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "haproxy", "bash")
	gitremote.RequireGit(t)
	for _, tc := range haproxyCases {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			for _, err := range runHAProxyCase(t, tc, nil) {
				t.Error(err)
			}
		})
	}
}

// runHAProxyCase runs one case and returns how the behaviours differ;
// mutate, when set, changes the imported site's files before they are
// committed (to see the comparison fail).
func runHAProxyCase(t *testing.T, tc haproxyCase, mutate func(files map[string]string)) []error {
	var diffs []error
	cfg := corpusCopy(t, tc.file, tc.rewrites...)
	res, err := importer.Import(importer.Options{
		HAProxy: []importer.Input{{Path: tc.file, Data: []byte(cfg)}},
		Nodes:   []string{"gw1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Refused) > 0 {
		t.Fatalf("%s is refused: %v", tc.file, res.Refused)
	}
	files := map[string]string{}
	for _, f := range res.Files {
		files[f.Name] = string(f.Data)
	}
	if mutate != nil {
		mutate(files)
	}
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", files, "import "+tc.file)

	back := lab.NewSwitch(t)
	orig, imp := lab.NewNetns(t, "io"), lab.NewNetns(t, "ii")
	back.Attach(t, orig, "eth0", "198.51.100.1/24")
	back.Attach(t, imp, "eth0", "198.51.100.2/24")
	for _, a := range tc.local {
		orig.Run(t, "ip", "addr", "add", a, "dev", "lo")
		imp.Run(t, "ip", "addr", "add", a, "dev", "lo")
	}
	var tlsConf *tls.Config
	if tc.tls {
		tlsConf = labTLS(t)
	}
	servers := map[string]*labServer{}
	hosts := map[string]*lab.Netns{}
	for _, s := range tc.servers {
		ip, _, _ := strings.Cut(s.addr, ":")
		if hosts[ip] == nil {
			hosts[ip] = lab.NewNetns(t, fmt.Sprintf("is%d", len(hosts)))
			back.Attach(t, hosts[ip], "eth0", ip+"/24")
		}
		servers[s.name] = startLabServer(t, hosts[ip], s, tlsConf)
	}

	hapSock := startOriginalHAProxy(t, orig, haproxy21(cfg))
	backends := backendOf(cfg)
	ag, sock := startKernAgent(t, imp, "gw1", repo)

	// compare waits for HAProxy to settle, then for the imported site to
	// take out the same servers, and compares the spreads.
	compare := func(phase string, n int, want map[string]string) {
		t.Helper()
		var hap map[string]string
		nicEventually(t, 60*time.Second, phase+": HAProxy's checks settled", func() (bool, string) {
			var out string
			hap, out = haproxyStat(t, hapSock)
			for k, s := range want {
				if hap[k] != s {
					return false, out
				}
			}
			return settled(hap), out
		})
		checked := map[string]bool{}
		for k, s := range hap {
			checked[k] = s != "no check"
		}
		var gw map[string]string
		nicEventually(t, 60*time.Second, phase+": the imported site's servers as HAProxy's "+fmt.Sprint(hap), func() (bool, string) {
			ag.alive(t, phase)
			var out string
			gw, out = importedServers(t, sock, backends)
			if len(gw) == 0 {
				return false, out
			}
			for k, s := range gw {
				if _, ok := hap[k]; !ok && !slices.Contains(tc.dispatch, k) {
					t.Fatalf("%s: the imported site has server %s, HAProxy has not: %v", phase, k, hap)
				}
				if strings.Contains(s, "checking") || (checked[k] && s != hap[k]) {
					return false, fmt.Sprint(gw)
				}
			}
			return true, out
		})
		a, b := spread(t, orig, tc.dial, n, tc.tls), spread(t, imp, tc.dial, n, tc.tls)
		t.Logf("%s: HAProxy %v down %v; imported %v down %v", phase, a, downIn(hap), b, downIn(gw))
		if err := sameSpread(a, b, n); err != nil {
			diffs = append(diffs, fmt.Errorf("%s: %w (original %v, imported %v)", phase, err, a, b))
		}
	}
	compare("running", 100, nil)
	tc.breakIt(servers)
	// Fewer: HAProxy retries a refused connection once a second.
	compare("a server broken", 40, tc.broken)
	return diffs
}

// TestImportBehaviourHAProxyMutated: the comparison fails when the
// imported site's mapping is broken: the weights swapped.
func TestImportBehaviourHAProxyMutated(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "haproxy", "bash")
	gitremote.RequireGit(t)
	diffs := runHAProxyCase(t, haproxyCases[1], func(files map[string]string) {
		s := files["services.cue"]
		if !strings.Contains(s, "weight: 30") || !strings.Contains(s, "weight: 70") {
			t.Fatalf("no weights to swap:\n%s", s)
		}
		s = strings.Replace(s, "weight: 30", "weight: 7x", 1)
		s = strings.Replace(s, "weight: 70", "weight: 30", 1)
		files["services.cue"] = strings.Replace(s, "weight: 7x", "weight: 70", 1)
	})
	if len(diffs) == 0 {
		t.Fatal("the weights were swapped in the imported site, and the comparison saw no difference")
	}
	t.Logf("as expected: %v", diffs)
}

// vipHolder asks, from the client, which gateway answers on vip: each
// gateway runs a responder writing its node name.
func vipHolder(client *lab.Netns, vip string) string {
	var name string
	_ = client.Do(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(vip, "9999"), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(c)
		name = strings.TrimSpace(string(b))
		return nil
	})
	return name
}

func startResponder(t *testing.T, ns *lab.Netns, name string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", "0.0.0.0:9999")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, name+"\n")
			c.Close()
		}
	}()
}

var kaState = regexp.MustCompile(`\((\S+)\) Entering (\w+) STATE`)

// keepalivedState is the last state keepalived logged for instance.
func keepalivedState(k *lab.Keepalived, instance string) string {
	state := ""
	for _, m := range kaState.FindAllStringSubmatch(k.Log(), -1) {
		if m[1] == instance {
			state = m[2]
		}
	}
	return state
}

// vrrpCase is a corpus keepalived file with its lab: the file is gw1's;
// gw2's differs as the file's guide says the backup's does (or, for a
// file without a guide, as a backup that the file's weights can tip).
type vrrpCase struct {
	file, instance, vip string
	rewrites            []string
	backup              []string // rewrites of gw1's copy into gw2's
	// ifaces are the file's other interfaces: each node has them on a
	// second segment, with the addresses given (none for an interface
	// only tracked).
	ifaces []vrrpIface
	// preemptDelay is the file's preempt_delay: a node that comes back
	// waits that long before it takes the VIP back.
	preemptDelay time.Duration
	// more are phases after gw1 is back (what the file tracks, failing).
	more []vrrpPhase
}

// vrrpIface is an interface of a case's nodes beyond eth0.
type vrrpIface struct{ name, gw1, gw2 string }

// vrrpPhase is something happening to both labs alike, with the nodes
// still connected to the VIP's segment.
type vrrpPhase struct {
	name      string
	do        func(t *testing.T, p *vrrpPair)
	connected []string
}

// vrrpPair is one side of a VRRP lab: two gateways and a client on the
// VIP's segment.
type vrrpPair struct {
	sw     *lab.Switch
	client *lab.Netns
	ns     map[string]*lab.Netns
	port   map[string]string
	state  func(node string) string
}

var vrrpCases = []vrrpCase{
	{
		// The kubeadm HA guide's keepalived: MASTER 101 and BACKUP 100,
		// a check script with weight -2.
		file: "keepalived/kubeadm-ha-considerations.conf", instance: "VI_1", vip: "203.0.113.40",
		rewrites: []string{"192.168.0.40", "203.0.113.40", "/etc/keepalived/check_apiserver.sh", "@SCRIPT@"},
		backup:   []string{"state MASTER", "state BACKUP", "priority 101", "priority 100"},
	},
	{
		// Pi-hole's: both BACKUP, the primary 100 (the secondary lower),
		// preempting; its virtual_server (IPVS) is not run here.
		file: "keepalived/matayto-pihole-keepalived.conf", instance: "pihole", vip: "203.0.113.41",
		rewrites: []string{"192.168.0.100", "203.0.113.41", "192.168.0.101", "203.0.113.31", "192.168.0.102", "203.0.113.32"},
		backup:   []string{"priority 100", "priority 90"},
	},
	{
		// Redis failover: both BACKUP with nopreempt: the VIP stays where
		// it is when gw1 comes back. The lab has no Redis: its check and
		// the notify scripts that start and stop it stand for themselves
		// (a script that passes, true).
		file: "keepalived/aw-redis-failover.conf", instance: "VI_ETH0", vip: "203.0.113.42",
		rewrites: []string{"172.16.0.180", "203.0.113.42", "killall -0 redis-server", "@SCRIPT@",
			"/usr/bin/sudo -u redis /opt/redis.sh -m", "true", "/usr/bin/sudo -u redis /opt/redis.sh -s", "true",
			"/usr/bin/sudo -u redis /opt/redis.sh -k", "true"},
		backup: []string{"priority 200", "priority 100"},
	},
	{
		// OpenSIPS: a MASTER at 160 with a UDP virtual_server (IPVS, not
		// run here: its nat service is the imported site's); the backup
		// is the same file in state BACKUP at a lower priority.
		file: "keepalived/nfhook-opensips-cluster.conf", instance: "VI_1", vip: "203.0.113.43",
		rewrites: []string{"10.10.18.25", "203.0.113.43", "10.10.18.20", "203.0.113.37"},
		backup:   []string{"state MASTER", "state BACKUP", "priority 160", "priority 150"},
	},
	{
		// keepalived's VRRP sample: four instances on two interfaces,
		// PASS authentication, MASTER at 100 (VI_1, VI_3) and BACKUP at
		// 50; the backup node is the same file a step lower.
		file: "keepalived/acassen-vrrp.conf", instance: "VI_1", vip: "203.0.113.16",
		rewrites: []string{"192.168.200.", "203.0.113.", "192.168.201.", "198.51.100."},
		ifaces:   []vrrpIface{{"eth1", "198.51.100.11/24", "198.51.100.12/24"}},
		backup: []string{"state MASTER", "state BACKUP", "state MASTER", "state BACKUP",
			"priority 100", "priority 90", "priority 100", "priority 90", "priority 50", "priority 40", "priority 50", "priority 40"},
	},
	{
		// keepalived's local check sample: VI_1 at 100 tracks scripts
		// (weights -4, +2 and -2: the three ports are closed on both
		// nodes) and interfaces (eth1 +2 when up, eth2 -2 when down, eth3
		// fault when down): gw1 counts 98. The backup, at 99 with the
		// same tracks, counts 97, below gw1 until gw1's eth2 goes down
		// (the backup's other instances are lower: 90). The scripts that
		// look for sshd and HAProxy are the lab's (other tests run
		// those).
		file: "keepalived/acassen-vrrp.localcheck.conf", instance: "VI_1", vip: "203.0.113.18",
		rewrites: []string{"192.168.200.", "203.0.113.", "192.168.201.", "198.51.100.",
			"killall -0 sshd", "@SCRIPT@", "killall -0 haproxy", "@SCRIPT@"},
		ifaces: []vrrpIface{{"eth1", "198.51.100.11/24", "198.51.100.12/24"}, {"eth2", "", ""}, {"eth3", "", ""}},
		backup: append([]string{"state MASTER", "state BACKUP", "priority 100", "priority 99"}, repeatPair(8, "priority 100", "priority 90")...),
		more: []vrrpPhase{
			{"gw1's eth2 down", func(t *testing.T, p *vrrpPair) { p.ns["gw1"].Run(t, "ip", "link", "set", "eth2", "down") }, []string{"gw1", "gw2"}},
		},
	},
}

// TestImportBehaviourVRRP runs each keepalived case on two gateways with
// keepalived, and on two others with the imported site under the agent,
// each pair on its own segment with a client; and compares which node the
// client reaches on the VIP: at the start, when gw1 dies (its switch port
// cut), and when it comes back.
func TestImportBehaviourVRRP(t *testing.T) {
	runVRRPCases(t, vrrpCases)
}

// vrrpSyncCases are files whose instances are in sync groups. They fail
// today: when gw1 comes back, keepalived takes the VIP back, gitgw's
// members stay in FAULT. A member entering FAULT marks the others "sync
// group member in fault" (dataplane/vrrp, instance.syncGroup), and only a
// member leaving FAULT clears the mark; once every member is in FAULT
// (for its own link, or following another), each holds the others' mark
// and none leaves.
var vrrpSyncCases = []vrrpCase{
	{
		// keepalived's notify sample: VI_2 and VI_3 in a sync group (they
		// move together), notify scripts on the group and on VI_1 (the
		// lab's script stands for them).
		file: "keepalived/acassen-vrrp.scripts.conf", instance: "VI_2", vip: "203.0.113.100",
		rewrites: []string{"192.168.200.", "203.0.113.",
			"/usr/local/bin/vrrp.back", "@SCRIPT@", "/usr/local/bin/vrrp.mast", "@SCRIPT@",
			"/usr/local/bin/vrrp.fault", "@SCRIPT@", "/usr/local/bin/vrrp.sh", "@SCRIPT@"},
		backup: []string{"state MASTER", "state BACKUP", "state MASTER", "state BACKUP", "state MASTER", "state BACKUP",
			"priority 100", "priority 90", "priority 150", "priority 140", "priority 150", "priority 140"},
	},
	{
		// A Linux gateway's: two instances in a sync group, both BACKUP
		// at 150 with preempt_delay 5, on VMACs (use_vmac), PASS
		// authentication, excluded VIPs; the lab's script stands for the
		// conntrackd hand-over. The VLAN interface is the lab's eth1.
		file: "keepalived/zillow-linuxgateway.conf", instance: "pub_a", vip: "203.0.113.5",
		rewrites: []string{"192.168.43.", "203.0.113.", "172.16.57.7/24", "198.51.100.7/24",
			"ens7f1.57", "eth1", "ens7f0", "eth0",
			"/etc/keepalived/notify.sh", "@SCRIPT@", "/etc/conntrackd/primary-backup.sh", "@SCRIPT@"},
		ifaces:       []vrrpIface{{"eth1", "198.51.100.11/24", "198.51.100.12/24"}},
		backup:       []string{"priority 150", "priority 140", "priority 150", "priority 140"},
		preemptDelay: 5 * time.Second,
	},
}

// TestImportBehaviourVRRPSyncGroup runs the sync group cases as
// TestImportBehaviourVRRP runs the others.
func TestImportBehaviourVRRPSyncGroup(t *testing.T) {
	runVRRPCases(t, vrrpSyncCases)
}

func runVRRPCases(t *testing.T, cases []vrrpCase) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "keepalived", "nft", "bash")
	gitremote.RequireGit(t)
	for _, tc := range cases {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			for _, err := range runVRRPCase(t, tc, nil) {
				t.Error(err)
			}
		})
	}
}

// TestImportBehaviourVRRPMutated: the comparison fails when the imported
// site's mapping is broken: nopreempt lost.
func TestImportBehaviourVRRPMutated(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "keepalived", "nft", "bash")
	gitremote.RequireGit(t)
	diffs := runVRRPCase(t, vrrpCases[2], func(files map[string]string) {
		if !strings.Contains(files["vrrp.cue"], "preempt: false") {
			t.Fatalf("no preempt to change:\n%s", files["vrrp.cue"])
		}
		files["vrrp.cue"] = strings.Replace(files["vrrp.cue"], "preempt: false", "preempt: true", 1)
	})
	if len(diffs) == 0 {
		t.Fatal("nopreempt was lost in the imported site, and the comparison saw no difference")
	}
	t.Logf("as expected: %v", diffs)
}

// runVRRPCase runs one case and returns how the behaviours differ;
// mutate, when set, changes the imported site's files before they are
// committed.
func runVRRPCase(t *testing.T, tc vrrpCase, mutate func(files map[string]string)) []error {
	var diffs []error
	script := filepath.Join(t.TempDir(), "check.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	rw := slices.Clone(tc.rewrites)
	for i := 1; i < len(rw); i += 2 {
		rw[i] = strings.ReplaceAll(rw[i], "@SCRIPT@", script)
	}
	conf1 := corpusCopy(t, tc.file, rw...)
	conf2 := conf1
	for i := 0; i+1 < len(tc.backup); i += 2 {
		if !strings.Contains(conf2, tc.backup[i]) {
			t.Fatalf("backup rewrite %q matches nothing", tc.backup[i])
		}
		conf2 = strings.Replace(conf2, tc.backup[i], tc.backup[i+1], 1)
	}
	addr := map[string]string{"gw1": "203.0.113.11/24", "gw2": "203.0.113.12/24"}
	hosts := map[string]map[string][]netip.Prefix{}
	for node, a := range addr {
		hosts[node] = map[string][]netip.Prefix{"eth0": {netip.MustParsePrefix(a)}}
		for _, ifc := range tc.ifaces {
			if a := ifc.addr(node); a != "" {
				hosts[node][ifc.name] = []netip.Prefix{netip.MustParsePrefix(a)}
			}
		}
	}
	res, err := importer.Import(importer.Options{
		Keepalived: []importer.Input{{Node: "gw1", Path: tc.file, Data: []byte(conf1)}, {Node: "gw2", Path: tc.file + ".gw2", Data: []byte(conf2)}},
		Hosts:      hosts,
	})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range res.Files {
		files[f.Name] = string(f.Data)
	}
	if mutate != nil {
		mutate(files)
	}
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", files, "import "+tc.file)

	mk := func(prefix string) *vrrpPair {
		p := &vrrpPair{sw: lab.NewSwitch(t), client: lab.NewNetns(t, prefix+"c"), ns: map[string]*lab.Netns{}, port: map[string]string{}}
		p.sw.Attach(t, p.client, "eth0", "203.0.113.50/24")
		var other *lab.Switch
		if len(tc.ifaces) > 0 {
			other = lab.NewSwitch(t)
		}
		for _, node := range []string{"gw1", "gw2"} {
			p.ns[node] = lab.NewNetns(t, prefix+node[2:])
			p.port[node] = p.sw.Attach(t, p.ns[node], "eth0", addr[node])
			for _, ifc := range tc.ifaces {
				var addrs []string
				if a := ifc.addr(node); a != "" {
					addrs = append(addrs, a)
				}
				other.Attach(t, p.ns[node], ifc.name, addrs...)
			}
			startResponder(t, p.ns[node], node)
		}
		return p
	}
	orig, imp := mk("vo"), mk("vi")
	kas := map[string]*lab.Keepalived{
		"gw1": lab.StartKeepalived(t, orig.ns["gw1"], conf1),
		"gw2": lab.StartKeepalived(t, orig.ns["gw2"], conf2),
	}
	orig.state = func(node string) string { return keepalivedState(kas[node], tc.instance) }
	socks := map[string]string{}
	agents := map[string]*netnsAgent{}
	for _, node := range []string{"gw1", "gw2"} {
		agents[node], socks[node] = startKernAgent(t, imp.ns[node], node, repo)
	}
	imp.state = func(node string) string {
		agents[node].alive(t, "VRRP state")
		st, _ := kernStatus(t, socks[node])
		return vrrpState(st, tc.instance)
	}

	// holder waits until exactly one of the connected nodes is MASTER,
	// the client reaches it on the VIP, and nothing has changed for
	// longer than the master down interval (3 adverts of 1 s and the
	// skew) and the file's preempt delay: a node that comes back passes
	// through FAULT and BACKUP, and a BACKUP that preempts takes over
	// within that time. It returns the node. Both labs are awaited at
	// once: the keepalived one on its own goroutine (its states are read
	// from keepalived's log; the agents' through the test).
	quiet := 5*time.Second + tc.preemptDelay
	holder := func(ctx context.Context, p *vrrpPair, connected []string) (string, error) {
		var got, last string
		since, deadline := time.Now(), time.Now().Add(90*time.Second)
		for {
			var masters []string
			seen := map[string]string{}
			for _, node := range connected {
				seen[node] = p.state(node)
				if seen[node] == "MASTER" {
					masters = append(masters, node)
				}
			}
			got = vipHolder(p.client, tc.vip)
			now := fmt.Sprintf("states %v, the VIP answered by %q", seen, got)
			if now != last {
				last, since = now, time.Now()
			}
			switch {
			case len(masters) == 1 && got == masters[0] && time.Since(since) > quiet:
				return got, nil
			case time.Now().After(deadline):
				return "", fmt.Errorf("after 90s, still not one master reached on the VIP for %s; last seen: %s", quiet, now)
			case ctx.Err() != nil:
				return "", ctx.Err()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	phases := append([]vrrpPhase{
		{"start", func(*testing.T, *vrrpPair) {}, []string{"gw1", "gw2"}},
		{"gw1 dies", func(t *testing.T, p *vrrpPair) { p.sw.SetPort(t, p.port["gw1"], false) }, []string{"gw2"}},
		{"gw1 back", func(t *testing.T, p *vrrpPair) { p.sw.SetPort(t, p.port["gw1"], true) }, []string{"gw1", "gw2"}},
	}, tc.more...)
	for _, phase := range phases {
		phase.do(t, orig)
		phase.do(t, imp)
		ctx, cancel := context.WithCancel(t.Context())
		type held struct {
			node string
			err  error
		}
		ka := make(chan held, 1)
		go func() {
			n, err := holder(ctx, orig, phase.connected)
			ka <- held{n, err}
		}()
		b, errB := holder(ctx, imp, phase.connected)
		if errB != nil {
			cancel()
		}
		a := <-ka
		cancel()
		if a.err != nil {
			t.Fatalf("keepalived, %s: %v", phase.name, a.err)
		}
		if errB != nil {
			t.Fatalf("imported, %s: %v", phase.name, errB)
		}
		t.Logf("%s: keepalived %s, imported %s", phase.name, a.node, b)
		if a.node != b {
			diffs = append(diffs, fmt.Errorf("%s: the VIP is on %s under keepalived, on %s under the imported site", phase.name, a.node, b))
		}
	}
	return diffs
}

// repeatPair is n times the rewrite old → new: one for each of n
// occurrences, in order.
func repeatPair(n int, old, new string) []string {
	var out []string
	for range n {
		out = append(out, old, new)
	}
	return out
}

// addr is node's address on the interface ("" for none).
func (i vrrpIface) addr(node string) string {
	if node == "gw1" {
		return i.gw1
	}
	return i.gw2
}
