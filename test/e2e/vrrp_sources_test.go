package e2e

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/vrrp"
	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

// sourcesSite is the lab site's VRRP part alone, gw1 running it without
// waiting for gw2; extra is added to VI_1.
func sourcesSite(extra string) map[string]string {
	return map[string]string{
		"cue.mod/module.cue": "module: \"example.net/sources-e2e@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

site: {
	name: "sources-e2e"
	rollout: pairs: false
	bake: window: "0s"
}

nodes: {
	gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]
	gw2: interfaces: eth0: addresses: ["203.0.113.12/24"]
}

vrrp: VI_1: {
	interface:       "eth0"
	vrid:            51
	version:         3
	advert_interval: "100ms"
	nodes: {gw1: priority: 150, gw2: priority: 100}
	vips: ["203.0.113.100/24"]
` + extra + `
}
`,
	}
}

// TestAgentVRRPForeignSource runs the agent on the lab site's gw1 in a
// namespace, with a host that is in no site (203.0.113.66) on its segment
// advertising VI_1 at priority 200. By default the agent hears only the
// site's nodes: it stays master and counts the drops. A commit that lists
// the host in allow_sources (keepalived during a migration) lets the same
// adverts win.
func TestAgentVRRPForeignSource(t *testing.T) {
	lab.RequireRoot(t)
	lab.RequireCommand(t, "ip", "git")
	gitremote.RequireGit(t)
	repo := gitremote.NewBare(t)
	repo.Commit(t, "main", sourcesSite(""), "lab: VI_1 on gw1")

	sw := lab.NewSwitch(t)
	gw1, foreign := lab.NewNetns(t, "src-gw1"), lab.NewNetns(t, "src-lan")
	sw.Attach(t, gw1, "eth0", "203.0.113.11/24")
	sw.Attach(t, foreign, "eth0", "203.0.113.66/24")

	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "gitgw.sock")
	units := filepath.Join(dir, "units")
	ag := startNetnsAgent(t, gw1, "gw1",
		"--repo", repo.FileURL(), "--node", "gw1", "--state-dir", filepath.Join(dir, "state"),
		"--interval", "1s", "--resync", "1h", "--status-coalesce", "0",
		"--socket", sock, "--listen", "",
		"--unit-dir", units, "--systemd-socket", filepath.Join(units, "none"))
	vi1 := func() (control.VRRPInstance, string) {
		out, _, code := runGitgw(t, "status", "--json", "--socket", sock)
		var st control.Status
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			return control.VRRPInstance{}, out
		}
		for _, in := range st.VRRP {
			if in.Name == "VI_1" {
				b, _ := json.Marshal(in)
				return in, string(b)
			}
		}
		return control.VRRPInstance{}, out
	}
	var transitions uint64
	nicEventually(t, 90*time.Second, "gw1 master of VI_1", func() (bool, string) {
		ag.alive(t, "VI_1 master")
		in, seen := vi1()
		transitions = in.Counters.Transitions
		return in.State == "MASTER", seen
	})

	// The LAN host: priority-200 adverts for VI_1, every 100 ms, from a raw
	// socket in its own namespace.
	var c *vrrp.RawConn
	if err := foreign.Do(func() (err error) { c, err = vrrp.Listen("eth0", false); return err }); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("203.0.113.66")
	msg, err := (&vrrp.Packet{Version: 3, VRID: 51, Priority: 200, Interval: 100 * time.Millisecond,
		Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.100")}}).Marshal(src, vrrp.GroupV4, vrrp.ChecksumPseudo)
	if err != nil {
		t.Fatal(err)
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			_ = c.Write(msg, src, vrrp.GroupV4)
			select {
			case <-quit:
				return
			case <-tk.C:
			}
		}
	}()
	t.Cleanup(func() { close(quit); <-done; _ = c.Close() })

	// Thirty adverts are ten master-down intervals: one heard would have
	// made gw1 backup at once.
	nicEventually(t, 60*time.Second, "30 adverts from 203.0.113.66 dropped with gw1 still master", func() (bool, string) {
		in, seen := vi1()
		if in.State != "" && in.State != "MASTER" {
			t.Fatalf("the LAN host took mastership: %s", seen)
		}
		return in.Counters.Drops["source"] >= 30, seen
	})
	if in, seen := vi1(); in.Counters.AdvertsIn != 0 || in.Counters.Transitions != transitions {
		t.Errorf("foreign adverts heard: %s", seen)
	}

	// Listed in the site, the host is a peer: its priority 200 wins.
	repo.Commit(t, "main", sourcesSite(`	allow_sources: ["203.0.113.66"]`), "VI_1: hear 203.0.113.66 (keepalived, migrating)")
	nicEventually(t, 90*time.Second, "gw1 backup to 203.0.113.66", func() (bool, string) {
		ag.alive(t, "the listed host's mastership")
		in, seen := vi1()
		return in.State == "BACKUP" && strings.HasPrefix(in.Master, "203.0.113.66"), seen
	})
}
