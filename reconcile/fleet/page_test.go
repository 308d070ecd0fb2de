package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/gitgw/gitgw/reconcile/drift"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/reconcile/plan"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/goldenfile"
	"github.com/gitgw/gitgw/test/lab"
)

// importTime is when gitremote.ImportRefs dates its commits; the page's
// clock is set two minutes later, so that an alive ref bound to 3m is
// fresh and one bound to 30s is stale.
var importTime = time.Unix(1700000000, 0).UTC()

// pageNode is one node of the page fixture.
type pageNode struct {
	node, outcome, applied string
	instance               string
	vrid                   int
	segment, state         string
	proxy                  []string // servers' health
	alive                  string   // the alive ref's bound ("": no alive ref)
}

// fleetFixture is a real bare repository with five nodes' status branches
// and alive refs: gw1 converged on the head and MASTER of VRID 51, gw2
// pending on the previous commit (its BACKUP), gw3 and gw4 both MASTER of
// VRID 52 (a split brain) with gw3's agent gone quiet (stale), gw4 held,
// and gw5 suspended as the only, BACKUP, member of VRID 53 (no master).
func fleetFixture(t *testing.T) (r *gitremote.Repo, head string) {
	t.Helper()
	gitremote.RequireGit(t)
	r = gitremote.NewBare(t)
	prev := r.Commit(t, "main", map[string]string{"README": "site\n"}, "site")
	head = r.Commit(t, "main", map[string]string{"README": "site, v2\n"}, "site v2")
	for _, n := range []pageNode{
		{"gw1", drift.Converged, head, "VI_1", 51, "198.51.100.0/25", "MASTER", []string{"up", "up", "down"}, "3m0s"},
		{"gw2", drift.Incomplete, prev, "VI_1", 51, "198.51.100.0/25", "BACKUP", []string{"up"}, "3m0s"},
		{"gw3", drift.Converged, head, "VI_9", 52, "203.0.113.0/24", "MASTER", nil, "30s"},
		{"gw4", drift.Held, head, "VI_9", 52, "203.0.113.0/24", "MASTER", nil, "3m0s"},
		{"gw5", drift.Suspended, prev, "VI_5", 53, "198.51.100.128/25", "BACKUP", nil, ""},
	} {
		st := drift.Status{SchemaVersion: drift.SchemaVersion, Node: n.node, Applied: n.applied, Desired: drift.Revision{Commit: head},
			LastPass: drift.Pass{Outcome: n.outcome}, Counts: map[string]int{}, Resources: []drift.Resource{}, Drift: []drift.Item{},
			Sections: map[string]any{plan.FamilyVRRP.String(): drift.VRRPSection{Instances: []drift.VRRPInstance{
				{Name: n.instance, VRID: n.vrid, Interface: "eth0", State: n.state, Family: "IPv4", Segments: []string{n.segment}}}}}}
		if n.outcome == drift.Incomplete {
			st.Counts[drift.Pending] = 2
		}
		if n.proxy != nil {
			ps := drift.ProxyService{Name: "web"}
			for i, h := range n.proxy {
				ps.Servers = append(ps.Servers, drift.ProxyServer{Name: fmt.Sprintf("s%d", i+1), Health: h})
			}
			st.Sections[plan.FamilyProxy.String()] = drift.ProxySection{Services: []drift.ProxyService{ps}}
		}
		js, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		r.ImportBranches(t, map[string]map[string]string{gitrepo.DefaultStatusPrefix + n.node: {drift.StatusFile: string(js)}},
			fmt.Sprintf("status(%s): fixture\n\nGitgw-Node: %s\n", n.node, n.node))
		if n.alive != "" {
			id := gitrepo.AgentID{Machine: "m-" + n.node, Host: n.node, Boot: "b1", PID: 400 + n.vrid, Started: importTime.Add(-time.Hour)}
			r.ImportRefs(t, map[string]map[string]string{gitrepo.AliveRefPrefix + n.node: {}},
				fmt.Sprintf("alive(%s)\n\n%s: %s\n%s: %s\n", n.node, gitrepo.TrailerAliveBound, n.alive, gitrepo.TrailerAgentID, id))
		}
	}
	return r, head
}

func pageClock() time.Time { return importTime.Add(2 * time.Minute) }

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func matchAll(t *testing.T, what, body string, res ...string) {
	t.Helper()
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("%s lacks %s", what, re)
		}
	}
}

// TestPageRendersTheFleet renders the page from a real repository's
// status branches and alive refs: alerts on top (the split brain and the
// router without a master first), the counts, one row per node and one
// per virtual router; /fleet.json is what `gitgw fleet --json` prints.
func TestPageRendersTheFleet(t *testing.T) {
	r, head := fleetFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := NewPage(PageOptions{Read: Options{URL: r.Dir, Ref: "main", Now: pageClock}})
	if err := p.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	code, body := fetch(t, srv.URL+"/")
	if code != http.StatusOK {
		t.Fatalf("GET /: %d %s", code, body)
	}
	matchAll(t, "page", body,
		`(?s)<h1>.*`+
			`<div class="alert critical split-brain">SPLIT BRAIN: VRID 52 on 203.0.113.0/24 \(VI_9\): masters: gw3, gw4</div>\s*`+
			`<div class="alert critical no-master">NO MASTER: VRID 53 on 198.51.100.128/25 \(VI_5\): no node reports MASTER</div>\s*`+
			`<div class="alert notice stale">stale: gw3: .*`+
			`<div class="alert notice suspended">suspended: gw5: .*`+
			`<div class="alert notice pending">pending: gw2: not converged: 2 pending</div>.*`+
			`<table id="counts">`,
		`<code id="head">`+head[:7]+`</code>`,
		// nodes, converged, pending, suspended, held, failed, behind, stale
		`<tr><td>5</td><td class="ok">2</td><td class="warn">1</td><td class="warn">1</td><td class="warn">1</td><td>0</td><td>1</td><td class="bad">1</td></tr>`,
		`<tr id="node-gw1"><td>gw1</td><td class="ok outcome">converged</td><td><code>`+head[:7]+`</code></td><td class="ok sync">current</td>`+
			`<td><span class="master">VI_1=MASTER</span> </td><td>1 down, 2 up</td><td>0</td><td title="status\(gw1\): fixture">2m0s ago</td>`+
			`<td class="alive">alive \(2m0s ago\)</td><td>pid 451 on host gw1 \(machine m-gw1, started 2023-11-14T21:13:20Z\)</td></tr>`,
		`<tr id="node-gw2"><td>gw2</td><td class="warn outcome">pending</td><td><code>[0-9a-f]{7}</code></td><td class="warn sync">behind</td>`,
		`<tr id="node-gw3" class="stale"><td>gw3</td>.*<td class="alive">STALE \(2m0s ago\)</td>`,
		`<tr id="node-gw4"><td>gw4</td><td class="warn outcome">held</td>`,
		`<tr id="node-gw5"><td>gw5</td><td class="warn outcome">suspended</td>.*<td class="alive">no alive ref</td><td>—</td></tr>`,
		`<tr class="router"><td>51</td><td>IPv4</td><td>198.51.100.0/25</td><td>VI_1</td><td><span class="master">gw1=MASTER</span> <span class="backup">gw2=BACKUP</span> </td><td>gw1</td><td class="ok flag">ok</td></tr>`,
		`<tr class="router split-brain"><td>52</td><td>IPv4</td><td>203.0.113.0/24</td><td>VI_9</td>.*<td>gw3, gw4</td><td class="bad flag">SPLIT BRAIN</td></tr>`,
		`<tr class="router no-master"><td>53</td>.*<td>none</td><td class="bad flag">NO MASTER</td></tr>`,
	)
	if strings.Contains(body, "read-error") {
		t.Error("a successful read shows an error")
	}

	code, js := fetch(t, srv.URL+"/fleet.json")
	f, err := Read(ctx, Options{URL: r.Dir, Ref: "main", Now: pageClock})
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := drift.WriteFleetJSON(&want, f); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || js != want.String() {
		t.Errorf("GET /fleet.json: %d\n%s\nwant (gitgw fleet --json)\n%s", code, js, want.String())
	}
}

// TestPageMetrics: /metrics tells an alerting rule what the page shows
// (the split brain, the router without a master, the stale node, the
// outcomes), and the reads' own health; Prometheus's conventions hold.
func TestPageMetrics(t *testing.T) {
	r, _ := fleetFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := NewPage(PageOptions{Read: Options{URL: r.Dir, Ref: "main", Now: pageClock}})
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	if _, body := fetch(t, srv.URL+"/metrics"); strings.Contains(body, "gitgw_fleet_nodes{") ||
		!strings.Contains(body, "gitgw_fleet_last_read_success_timestamp_seconds 0\n") {
		t.Errorf("metrics before any read:\n%s", body)
	}
	if err := p.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	code, body := fetch(t, srv.URL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, want := range []string{
		`gitgw_fleet_alerts{kind="split-brain"} 1`,
		`gitgw_fleet_alerts{kind="no-master"} 1`,
		`gitgw_fleet_alerts{kind="stale"} 1`,
		`gitgw_fleet_alerts{kind="rejected"} 0`,
		`gitgw_fleet_nodes{outcome="converged"} 2`,
		`gitgw_fleet_nodes{outcome="pending"} 1`,
		`gitgw_fleet_nodes{outcome="held"} 1`,
		`gitgw_fleet_nodes{outcome="suspended"} 1`,
		`gitgw_fleet_nodes{outcome="failed"} 0`,
		`gitgw_fleet_nodes_stale 1`,
		`gitgw_fleet_nodes_behind 1`,
		fmt.Sprintf(`gitgw_fleet_node_last_seen_timestamp_seconds{node="gw5"} %g`, float64(importTime.Unix())),
		fmt.Sprintf(`gitgw_fleet_last_read_success_timestamp_seconds %g`, float64(pageClock().Unix())),
		`gitgw_fleet_read_failures_total 0`,
		`go_goroutines `,
	} {
		if !strings.HasSuffix(want, " ") {
			want += "\n" // the whole value
		}
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("promlint: %s: %s", pr.Metric, pr.Text)
	}
}

// TestPageKeepsSnapshotOnReadError: a failed re-read leaves the last
// snapshot on the page, with the error above it; before any snapshot the
// page says why there is none, and fleet.json answers 503.
func TestPageKeepsSnapshotOnReadError(t *testing.T) {
	r, _ := fleetFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := NewPage(PageOptions{Read: Options{URL: r.Dir, Ref: "main", Now: pageClock}})
	if err := p.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(r.Dir, r.Dir+".gone"); err != nil {
		t.Fatal(err)
	}
	if err := p.Refresh(ctx); err == nil {
		t.Fatal("a read of a removed repository succeeded")
	}
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	_, body := fetch(t, srv.URL+"/")
	matchAll(t, "page after a failed read", body,
		`(?s)<div class="readerr" id="read-error">Reading the fleet failed 0s ago: gitrepo: read status branches of .*Showing the snapshot read 0s ago .*`+
			`<div class="alert critical split-brain">.*<tr id="node-gw1">`)
	if _, m := fetch(t, srv.URL+"/metrics"); !strings.Contains(m, "gitgw_fleet_read_failures_total 1\n") || !strings.Contains(m, `gitgw_fleet_nodes{outcome="held"} 1`) {
		t.Errorf("metrics after a failed read:\n%s", m)
	}
	if code, js := fetch(t, srv.URL+"/fleet.json"); code != http.StatusOK || !strings.Contains(js, `"node": "gw5"`) {
		t.Errorf("fleet.json after a failed read: %d %.200s", code, js)
	}

	empty := NewPage(PageOptions{Read: Options{URL: r.Dir, Ref: "main", Now: pageClock}})
	if err := empty.Refresh(ctx); err == nil {
		t.Fatal("a read of a removed repository succeeded")
	}
	srv2 := httptest.NewServer(empty.Handler())
	defer srv2.Close()
	code, body := fetch(t, srv2.URL+"/")
	if code != http.StatusOK {
		t.Errorf("GET / without a snapshot: %d", code)
	}
	matchAll(t, "page without a snapshot", body, `<div class="readerr" id="read-error">Reading the fleet failed 0s ago: gitrepo: read status branches of [^<]*\. No snapshot yet\.</div>`)
	if code, js := fetch(t, srv2.URL+"/fleet.json"); code != http.StatusServiceUnavailable || !strings.Contains(js, "no fleet read yet: gitrepo:") {
		t.Errorf("fleet.json without a snapshot: %d %s", code, js)
	}
}

// servePage runs a page on a real listener (the way `gitgw fleet --serve`
// does) and waits for its first read.
func servePage(t *testing.T, read Options, refresh time.Duration) (*Page, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := NewPage(PageOptions{Read: read, Listen: ln.Addr().String(), Refresh: refresh})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case <-p.Ready():
	case <-time.After(time.Minute):
		t.Fatal("no first read within a minute")
	}
	return p, ln.Addr().String()
}

// TestRequestsDoNotRead: requests render the snapshot; only the refresh
// loop reads (one read for many requests within a refresh period).
func TestRequestsDoNotRead(t *testing.T) {
	r, _ := fleetFixture(t)
	p, addr := servePage(t, Options{URL: r.Dir, Ref: "main", Now: pageClock}, time.Hour)
	for range 5 {
		for _, path := range []string{"/", "/fleet.json"} {
			if code, _ := fetch(t, "http://"+addr+path); code != http.StatusOK {
				t.Fatalf("GET %s: %d", path, code)
			}
		}
	}
	if n := p.Reads(); n != 1 {
		t.Errorf("%d reads for 10 requests within one refresh period, want 1", n)
	}
}

// rawGet sends GET path to addr with the given Host header ("-": none,
// HTTP/1.0) and returns the status code.
func rawGet(t *testing.T, addr, path, host string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	if host == "-" {
		req = fmt.Sprintf("GET %s HTTP/1.0\r\n\r\n", path)
	}
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s Host %q: %v", path, host, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestPageHostHeader sends real requests to the real listener: only
// loopback names and the listen address are served, so that a web page
// reaching the listener through DNS rebinding reads nothing of the fleet.
func TestPageHostHeader(t *testing.T) {
	r, _ := fleetFixture(t)
	_, addr := servePage(t, Options{URL: r.Dir, Ref: "main", Now: pageClock}, time.Hour)
	_, port, _ := net.SplitHostPort(addr)
	for _, c := range []struct {
		host string
		want int
	}{
		{addr, 200},
		{"localhost:" + port, 200},
		{"LOCALHOST", 200},
		{"127.0.0.1:8080", 200}, // ssh -L 8080:127.0.0.1:PORT
		{"[::1]:" + port, 200},
		{"evil.example", 421},
		{"evil.example:" + port, 421},
		{"localhost.evil.example:" + port, 421},
		{"127.0.0.1.nip.io:" + port, 421},
		{"203.0.113.7:" + port, 421},
		{"-", 421},
	} {
		for _, path := range []string{"/", "/fleet.json", "/metrics"} {
			if got := rawGet(t, addr, path, c.host); got != c.want {
				t.Errorf("GET %s Host %q: %d, want %d", path, c.host, got, c.want)
			}
		}
	}
}

// TestRedacted: a token in the repository URL is not shown on the page.
func TestRedacted(t *testing.T) {
	for in, want := range map[string]string{
		"https://gitgw:tok-secret@git.example.net/site.git": "https://gitgw:xxxxx@git.example.net/site.git",
		"https://git.example.net/site.git":                  "https://git.example.net/site.git",
		"ssh://git@git.example.net/site.git":                "ssh://git@git.example.net/site.git",
		"/srv/git/site.git":                                 "/srv/git/site.git",
	} {
		if got := redacted(in); got != want {
			t.Errorf("redacted(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAllowedHost covers listen addresses a test cannot bind.
func TestAllowedHost(t *testing.T) {
	for _, c := range []struct {
		listen, host string
		want         bool
	}{
		{"198.51.100.5:9143", "198.51.100.5:9143", true},
		{"198.51.100.5:9143", "198.51.100.5", true},
		{"198.51.100.5:9143", "198.51.100.6:9143", false},
		{"198.51.100.5:9143", "localhost:9143", true},
		{"198.51.100.5:9143", "fleet.example:9143", false},
		{"[2001:db8::5]:9143", "[2001:db8::5]:9143", true},
		{"[2001:db8::5]:9143", "[2001:db8::6]", false},
		{"fleet.example:9143", "FLEET.example:9143", true},
		{"fleet.example:9143", "other.example:9143", false},
		{":9143", "203.0.113.9:9143", true},
		{"[::]:9143", "198.51.100.5", true},
		{":9143", "evil.example:9143", false},
		{"0.0.0.0:9143", "[fe80::1%eth0]:9143", false},
		{"127.0.0.1:9143", "", false},
	} {
		if got := allowedHost(c.listen, c.host); got != c.want {
			t.Errorf("allowedHost(%q, %q) = %v, want %v", c.listen, c.host, got, c.want)
		}
	}
}

// TestFleetPageInChromium loads the page from the real server in headless
// Chromium (Debian's chromium package): the DOM it builds shows the split
// brain alert, the stale node and the pending node.
func TestFleetPageInChromium(t *testing.T) {
	lab.SkipShort(t, "no browser")
	lab.RequireCommand(t, "chromium")
	r, _ := fleetFixture(t)
	_, addr := servePage(t, Options{URL: r.Dir, Ref: "main", Now: pageClock}, time.Hour)
	profile := t.TempDir()
	chromium := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "chromium", append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
			"--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + profile, "--window-size=1200,700"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
		}
		return out
	}
	out := chromium("--dump-dom", "http://"+addr+"/")
	matchAll(t, "DOM", string(out),
		`<div class="alert critical split-brain">SPLIT BRAIN: VRID 52 on 203.0.113.0/24 \(VI_9\): masters: gw3, gw4</div>`,
		`<tr id="node-gw3" class="stale"><td>gw3</td>.*<td class="alive">STALE \(2m0s ago\)</td>`,
		`<tr id="node-gw2"><td>gw2</td><td class="warn outcome">pending</td>`,
		`<meta http-equiv="refresh" content="3600">`,
	)
	// The screenshot is for a person to look at (go test -update keeps it
	// in testdata/fleet.png).
	shot := filepath.Join(t.TempDir(), "fleet.png")
	chromium("--screenshot="+shot, "--hide-scrollbars", "http://"+addr+"/")
	b, err := os.ReadFile(shot)
	if err != nil || len(b) < 8 || string(b[1:4]) != "PNG" {
		t.Fatalf("no screenshot: %v", err)
	}
	if goldenfile.Update() {
		if err := os.WriteFile(filepath.Join("testdata", "fleet.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
