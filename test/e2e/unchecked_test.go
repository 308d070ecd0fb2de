package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/goldenfile"
	"github.com/gitgw/gitgw/test/lab"
)

// A UDP service without a health check, as keepalived's UDP
// virtual_servers often are: refused unless the site says unchecked: true,
// and then planned, run and shown with the risk stated.

// uncheckedServices is a proxied UDP service on the VIP with two servers
// and no check; unchecked is what the site adds to it ("" or the field).
func uncheckedServices(unchecked string) string {
	return `
services: dns: {
	protocol: "udp"
	binds: ["203.0.113.100:5353"]
	servers: {
		r1: address: "203.0.113.21:5353"
		r2: address: "203.0.113.22:5353"
	}
` + unchecked + `}
`
}

func writeSiteDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestUncheckedRefusedThenPlanned: without unchecked: true, validate and
// plan refuse the service at its place, and the message names the way
// out; with it, both accept it and the plan states the risk (golden).
func TestUncheckedRefusedThenPlanned(t *testing.T) {
	dir := writeSiteDir(t, kernSite(uncheckedServices("")))
	const refusal = "site.cue:23:11: services.dns: [service-health-check] service dns has no health check: a dead server would keep its share of connections; add a check, or unchecked: true to run without one on purpose"
	out, errOut, code := runGitgw(t, "validate", "--site", dir)
	if code != 1 || strings.TrimSpace(out) != refusal {
		t.Errorf("validate: exit %d, want 1\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", code, out, errOut, refusal)
	}
	if out, errOut, code = runGitgw(t, "plan", "--site", dir, "--node", "gw1", "--no-color"); code != 1 || !strings.Contains(errOut, refusal+"\n") {
		t.Errorf("plan: exit %d, want 1\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", code, out, errOut, refusal)
	}

	dir = writeSiteDir(t, kernSite(uncheckedServices("\tunchecked: true\n")))
	if out, errOut, code := runGitgw(t, "validate", "--site", dir); code != 0 {
		t.Fatalf("validate with unchecked: true: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runGitgw(t, "plan", "--site", dir, "--node", "gw1", "--no-color")
	if code != 0 {
		t.Fatalf("plan with unchecked: true: exit %d\n%s%s", code, out, errOut)
	}
	// Only the service's changes and its note: the rest depends on the
	// host the plan runs on (its NICs, its systemd, a running agent).
	var kept []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "proxy_server") || strings.Contains(l, "proxy_service") || strings.Contains(l, "no health check") {
			kept = append(kept, l)
		}
	}
	got := strings.Join(kept, "\n") + "\n"
	if !strings.Contains(got, "service dns (proxy udp, unchecked: true): no health check: traffic keeps going to a dead server; its servers are shown as NOCHECK") {
		t.Errorf("the plan does not state the risk:\n%s", out)
	}
	goldenfile.Check(t, filepath.Join("testdata", "unchecked-plan.golden"), []byte(got))
}

// TestUncheckedUDPService: the real agent runs the unchecked UDP service
// in namespaces: datagrams through the VIP reach both servers, which the
// status shows as NOCHECK with the risk stated; when r2 dies nothing takes
// it out, so part of the new flows go unanswered and r2 stays NOCHECK,
// never DOWN: the risk the site accepted, as keepalived behaves.
func TestUncheckedUDPService(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git")
	gitremote.RequireGit(t)
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", kernSite(uncheckedServices("\tunchecked: true\n")), "lab: unchecked udp service")

	sw := lab.NewSwitch(t)
	client := lab.NewNetns(t, "h2c")
	sw.Attach(t, client, "eth0", kernClient+"/24")
	gw := lab.NewNetns(t, "h2g")
	sw.Attach(t, gw, "eth0", "203.0.113.11/24")
	servers := map[string]*kernServer{}
	for i, name := range []string{"r1", "r2"} {
		ns := lab.NewNetns(t, "h2"+name)
		addr := fmt.Sprintf("203.0.113.%d", 21+i)
		sw.Attach(t, ns, "eth0", addr+"/24")
		servers[name] = startKernServer(t, ns, name, addr+":80", addr+":5353")
	}
	ag, sock := startKernAgent(t, gw, "gw1", repo)

	proxyServers := func(st control.Status) (map[string]string, *control.Service) {
		m := map[string]string{}
		for i, s := range st.Services {
			if s.Name != "dns" || s.Mode != "" {
				continue
			}
			for _, sv := range s.Servers {
				m[sv.Name] = sv.Status
			}
			return m, &st.Services[i]
		}
		return m, nil
	}
	nicEventually(t, 90*time.Second, "the service applied and gw1 master", func() (bool, string) {
		ag.alive(t, "the service applied")
		st, out := kernStatus(t, sock)
		m, svc := proxyServers(st)
		return svc != nil && m["r1"] == "NOCHECK" && m["r2"] == "NOCHECK" && vrrpState(st, "VI_1") == "MASTER", out
	})
	st, _ := kernStatus(t, sock)
	if _, svc := proxyServers(st); !svc.Unchecked || svc.Status != "UP" {
		t.Errorf("service dns: unchecked %v, status %s; want unchecked, UP", svc.Unchecked, svc.Status)
	}
	text, _, code := runGitgw(t, "status", "--socket", sock)
	if code != 0 || !strings.Contains(text, control.UncheckedRisk) || !strings.Contains(text, "dns/r2") {
		t.Errorf("gitgw status (exit %d) does not state the risk:\n%s", code, text)
	}

	// Round robin over new flows: both servers answer, seeing the proxy.
	on := map[string]int{}
	for i := 0; i < 10; i++ {
		srv, _, err := kernUDP(client, 5353)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		on[srv]++
	}
	if on["r1"] == 0 || on["r2"] == 0 {
		t.Fatalf("10 flows went to %v: round robin should use both servers", on)
	}

	// r2 dies. No check takes it out: new flows still go to it and are
	// lost, and the status goes on saying NOCHECK.
	servers["r2"].udp.Close()
	answered, lost := map[string]int{}, 0
	for i := 0; i < 10; i++ {
		srv, _, err := kernUDP(client, 5353)
		if err != nil {
			lost++
			continue
		}
		answered[srv]++
	}
	t.Logf("with r2 dead: %d of 10 flows lost, answered %v", lost, answered)
	if lost == 0 || answered["r1"] == 0 || answered["r2"] != 0 {
		t.Errorf("with r2 dead: %d flows lost, answered %v; want some lost (sent to r2) and the rest answered by r1", lost, answered)
	}
	st, out := kernStatus(t, sock)
	if m, _ := proxyServers(st); m["r2"] != "NOCHECK" {
		t.Errorf("r2 is %q after it died, want NOCHECK (nothing checks it):\n%s", m["r2"], out)
	}
}
