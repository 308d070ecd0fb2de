package e2e

import (
	"bufio"
	"fmt"
	"io"
	"math"
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
// 203.0.113.0/24), paths of the machine (HAProxy's chroot, pid file and
// stats socket; a check script), and, for a second keepalived node, the
// priority and state the file's own guide gives the backup.

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
// request with its name (through a TCP proxy as well as an HTTP one), and
// optionally a health port answering every request with a settable status
// (Patroni's REST API: 200 on the primary, 503 on a replica).
type labServer struct {
	name   string
	ln     net.Listener
	health net.Listener
	status atomic.Int32
	wg     sync.WaitGroup
}

func startLabServer(t *testing.T, ns *lab.Netns, name, addr, healthAddr string, status int) *labServer {
	t.Helper()
	s := &labServer{name: name}
	s.status.Store(int32(status))
	if err := ns.Do(func() error {
		var err error
		if s.ln, err = net.Listen("tcp4", addr); err != nil {
			return err
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

// stop closes the server's ports: it breaks, connections are refused.
func (s *labServer) stop() {
	s.ln.Close()
	if s.health != nil {
		s.health.Close()
	}
	s.wg.Wait()
}

// spread makes n connections to addr from inside ns, each an HTTP request,
// and counts the servers that answer; failed connections count as "error".
func spread(t *testing.T, ns *lab.Netns, addr string, n int) map[string]int {
	t.Helper()
	on := map[string]int{}
	for range n {
		var name string
		err := ns.Do(func() error {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return err
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

// haproxyStat is HAProxy's view of its servers (`show stat`): server name →
// status ("UP", "DOWN", "no check", or a transition "UP 1/3").
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
	sv, st, cs := col("svname"), col("status"), col("check_status")
	out := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) <= max(sv, st, cs) || f[sv] == "FRONTEND" || f[sv] == "BACKEND" {
			continue
		}
		status := f[st]
		if f[cs] == "INI" || strings.HasPrefix(f[cs], "* ") {
			// The first check has not run yet, or is running.
			status += " (checking)"
		}
		out[f[sv]] = status
	}
	return out, string(b)
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

// importedServers is the agent's view of its servers: server name → UP,
// DOWN, …, with "(checking)" until a server's first check has run.
func importedServers(t *testing.T, sock string) (map[string]string, string) {
	st, out := kernStatus(t, sock)
	m := map[string]string{}
	for _, s := range st.Services {
		for _, sv := range s.Servers {
			status := sv.Status
			if sv.LastCheck.IsZero() {
				status += " (checking)"
			}
			m[sv.Name] = status
		}
	}
	return m, out
}

// haproxyCase is a corpus HAProxy file with its lab.
type haproxyCase struct {
	file     string
	rewrites []string
	servers  []labServerSpec
	// dial is where clients connect, on the gateway itself; local are
	// addresses both gateways hold (on lo) for the file's binds.
	dial  string
	local []string
	// breakIt is what happens to the servers when "a backend breaks";
	// broken, HAProxy's view of them once it has noticed (right after
	// the break, its view is still the one before: the comparison waits
	// for this one).
	breakIt func(s map[string]*labServer)
	broken  map[string]string
}

// labServerSpec is a server of a case: its name (as the file names the
// server), address, health address (empty: none) and first health status.
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
		broken: map[string]string{"postgresql_127.0.0.1_5432": "DOWN", "postgresql_127.0.0.1_5433": "UP"},
	},
	{
		// Data Plane API's sites fixture: weighted round robin, 30/70,
		// over two servers without checks; HTTP mode with redispatch.
		// When a server dies, HAProxy (no check) keeps trying it and
		// redispatches; the import adds a TCP check (it warns) and takes
		// it out: the clients see the same.
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
		broken:  map[string]string{"www_server": "no check", "www_server_new": "no check"},
	},
	{
		// HAProxy's content switching sample: requests go to the dynamic
		// backend, round robin over four servers checked by HEAD
		// /login.php, unless they ask for images or CSS (the static
		// backend: not imported, the import warns; these clients ask
		// for /).
		file: "haproxy/haproxy-examples-content-sw-sample.cfg",
		rewrites: []string{
			// The lab's file descriptor limit (20000) is below what
			// HAProxy asks for 10000 connections.
			"maxconn         10000", "maxconn         5000",
			"192.168.1.10:80", "203.0.113.10:80",
			"192.168.1.1:80", "198.51.100.31:80",
			"192.168.1.2:80", "198.51.100.32:80",
			"192.168.1.3:80", "198.51.100.33:80",
			"192.168.1.4:80", "198.51.100.34:80",
			"192.168.1.8:80", "198.51.100.38:80",
			"192.168.1.9:80", "198.51.100.39:80",
		},
		servers: []labServerSpec{
			{"dynsrv1", "198.51.100.31:80", "", 0},
			{"dynsrv2", "198.51.100.32:80", "", 0},
			{"dynsrv3", "198.51.100.33:80", "", 0},
			{"dynsrv4", "198.51.100.34:80", "", 0},
		},
		dial:    "203.0.113.10:80",
		local:   []string{"203.0.113.10/32"},
		breakIt: func(s map[string]*labServer) { s["dynsrv2"].stop() },
		broken:  map[string]string{"dynsrv1": "UP", "dynsrv2": "DOWN", "dynsrv3": "UP", "dynsrv4": "UP"},
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
	servers := map[string]*labServer{}
	for i, s := range tc.servers {
		ns := lab.NewNetns(t, fmt.Sprintf("is%d", i))
		back.Attach(t, ns, "eth0", strings.Split(s.addr, ":")[0]+"/24")
		servers[s.name] = startLabServer(t, ns, s.name, s.addr, s.health, s.status)
	}

	hapSock := startOriginalHAProxy(t, orig, cfg)
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
			gw, out = importedServers(t, sock)
			if len(gw) == 0 {
				return false, out
			}
			for k, s := range gw {
				if _, ok := hap[k]; !ok {
					t.Fatalf("%s: the imported site has server %s, HAProxy has not: %v", phase, k, hap)
				}
				if strings.Contains(s, "checking") || (checked[k] && s != hap[k]) {
					return false, out
				}
			}
			return true, out
		})
		a, b := spread(t, orig, tc.dial, n), spread(t, imp, tc.dial, n)
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
// gw2's differs as the file's guide says the backup's does.
type vrrpCase struct {
	file, instance, vip string
	rewrites            []string
	backup              []string // rewrites of gw1's copy into gw2's
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
		rewrites: []string{"192.168.0.100", "203.0.113.41", "192.168.0.101", "198.51.100.31", "192.168.0.102", "198.51.100.32"},
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
		rewrites: []string{"10.10.18.25", "203.0.113.43", "10.10.18.20", "198.51.100.37"},
		backup:   []string{"state MASTER", "state BACKUP", "priority 160", "priority 150"},
	},
}

// TestImportBehaviourVRRP runs each keepalived case on two gateways with
// keepalived, and on two others with the imported site under the agent,
// each pair on its own segment with a client; and compares which node the
// client reaches on the VIP: at the start, when gw1 dies (its switch port
// cut), and when it comes back.
func TestImportBehaviourVRRP(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git", "keepalived", "nft", "bash")
	gitremote.RequireGit(t)
	for _, tc := range vrrpCases {
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

	type pair struct {
		sw     *lab.Switch
		client *lab.Netns
		ns     map[string]*lab.Netns
		port   map[string]string
		state  func(node string) string
	}
	mk := func(prefix string) *pair {
		p := &pair{sw: lab.NewSwitch(t), client: lab.NewNetns(t, prefix+"c"), ns: map[string]*lab.Netns{}, port: map[string]string{}}
		p.sw.Attach(t, p.client, "eth0", "203.0.113.50/24")
		for _, node := range []string{"gw1", "gw2"} {
			p.ns[node] = lab.NewNetns(t, prefix+node[2:])
			p.port[node] = p.sw.Attach(t, p.ns[node], "eth0", addr[node])
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
	// skew): a node that comes back passes through FAULT and BACKUP, and
	// a BACKUP that preempts takes over within that interval. It returns
	// the node.
	holder := func(p *pair, what string, connected ...string) string {
		t.Helper()
		const quiet = 5 * time.Second
		var got, last string
		since := time.Now()
		nicEventually(t, 90*time.Second, what+": one master, reached on the VIP, for "+quiet.String(), func() (bool, string) {
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
			return len(masters) == 1 && got == masters[0] && time.Since(since) > quiet, now
		})
		return got
	}
	for _, phase := range []struct {
		name      string
		do        func(p *pair)
		connected []string
	}{
		{"start", func(*pair) {}, []string{"gw1", "gw2"}},
		{"gw1 dies", func(p *pair) { p.sw.SetPort(t, p.port["gw1"], false) }, []string{"gw2"}},
		{"gw1 back", func(p *pair) { p.sw.SetPort(t, p.port["gw1"], true) }, []string{"gw1", "gw2"}},
	} {
		phase.do(orig)
		phase.do(imp)
		a := holder(orig, "keepalived, "+phase.name, phase.connected...)
		b := holder(imp, "imported, "+phase.name, phase.connected...)
		t.Logf("%s: keepalived %s, imported %s", phase.name, a, b)
		if a != b {
			diffs = append(diffs, fmt.Errorf("%s: the VIP is on %s under keepalived, on %s under the imported site", phase.name, a, b))
		}
	}
	return diffs
}
