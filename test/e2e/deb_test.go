package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/reconcile/control"
	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
	"github.com/gitgw/gitgw/test/systemd"
)

// TestDebianPackage builds the package with `make deb`, holds it to
// lintian, and installs it with dpkg into a namespaced systemd host whose
// /usr, /etc and /var have private writable layers (the host's are never
// written). It checks what an operator relies on: dpkg installs it without
// starting anything, the shipped unit (unmodified; a drop-in adds only the
// local test repository as writable) starts once agent.env is filled in and
// applies the site, the conffile survives a remove, and purge clears the
// state.
func TestDebianPackage(t *testing.T) {
	systemd.Require(t)
	lab.SkipShort(t, "builds the package")
	lab.RequireCommand(t, "make", "dpkg", "dpkg-deb", "lintian", "ip", "git", "curl")
	gitremote.RequireGit(t)

	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "make", "-C", repoRoot(t), "deb", "DEB_DIR="+out)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "gitgw_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v, want one gitgw_*_amd64.deb", debs)
	}
	deb := debs[0]

	// lintian with the default profile: no error and no warning.
	if b, err := exec.CommandContext(ctx, "lintian", "--allow-root", "--fail-on", "error,warning", deb).CombinedOutput(); err != nil {
		t.Errorf("lintian: %v\n%s", err, b)
	}
	contents := mustOutput(t, "dpkg-deb", "-c", deb)
	for _, f := range []string{
		"./usr/bin/gitgw", "./lib/systemd/system/gitgw.service", "./etc/gitgw/agent.env",
		"./usr/share/man/man1/gitgw.1.gz", "./usr/share/man/man1/gitgw-agent.1.gz", "./usr/share/man/man1/gitgw-plan.1.gz",
		"./usr/share/bash-completion/completions/gitgw", "./usr/share/zsh/vendor-completions/_gitgw",
		"./usr/share/fish/vendor_completions.d/gitgw.fish", "./usr/share/doc/gitgw/copyright",
		"./usr/share/gitgw/monitoring/gitgw-alerts.yml", "./usr/share/gitgw/monitoring/grafana-dashboard.json",
	} {
		if !strings.Contains(contents, " "+f+"\n") {
			t.Errorf("the package lacks %s", f)
		}
	}
	if got := mustOutput(t, "dpkg-deb", "-I", deb, "conffiles"); strings.TrimSpace(got) != "/etc/gitgw/agent.env" {
		t.Errorf("conffiles = %q, want /etc/gitgw/agent.env", got)
	}

	// gw1 with no stand-in backends: the site's own app@8080 serves both
	// servers' addresses, as on the lab's gateways.
	ns := gw1Host(t, "deb")
	h := systemd.New(t, systemd.Options{Name: "deb", Netns: ns.Path(), SystemBus: true,
		Overlay: []string{"/usr", "/etc", "/var/lib", "/var/log", "/var/cache"}})
	// Build images (Docker's, this CI's) ship a policy-rc.d that forbids
	// maintainer scripts to start or stop services; a gateway has none.
	// Removed in the private layer only.
	if b, err := h.Try(ctx, "rm", "-f", "/usr/sbin/policy-rc.d"); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	inside, err := h.Install(deb, "gitgw.deb")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := h.Try(ctx, "dpkg", "-i", inside); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, b)
	}
	// Installed, registered, but neither enabled nor started: it would take
	// the node's VIPs over from keepalived.
	if b, _ := h.Try(ctx, "pgrep", "-x", "gitgw"); strings.TrimSpace(b) != "" {
		t.Errorf("a gitgw process runs after dpkg -i: %s", b)
	}
	if _, err := h.Try(ctx, "test", "-e", "/etc/systemd/system/multi-user.target.wants/gitgw.service"); err == nil {
		t.Error("dpkg -i enabled the unit")
	}
	if _, err := h.Try(ctx, "test", "-s", "/usr/share/man/man1/gitgw-plan.1.gz"); err != nil {
		t.Errorf("man page not installed: %v", err)
	}

	// The operator's steps: fill in agent.env, then start. The test's
	// repository is local, so a drop-in lets the agent push its status
	// there (in production it is remote).
	repo := &gitremote.Repo{Dir: filepath.Join(h.StateDir, "site.git")}
	if _, err := gitremote.Git("", "init", "-q", "--bare", "-b", "main", repo.Dir); err != nil {
		t.Fatal(err)
	}
	// The lab's units too: app@8080 and app@8081 run `gitgw backend`, found
	// by systemd in /usr/bin where the package put it.
	site := operatorSite("500ms")
	units, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "lab", "units.cue"))
	if err != nil {
		t.Fatal(err)
	}
	site["units.cue"] = string(units)
	repo.Commit(t, "main", site, "lab: gw1")
	env := filepath.Join(h.StateDir, "agent.env")
	if err := os.WriteFile(env, []byte("GITGW_REPO="+repo.FileURL()+
		"\nGITGW_OPTS=--node gw1 --interval 1s --resync 1h --status-coalesce 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := h.Try(ctx, "sh", "-c", `cp "$1" /etc/gitgw/agent.env && mkdir -p /etc/systemd/system/gitgw.service.d &&
		printf '[Service]\nReadWritePaths=%s\n' "$2" >/etc/systemd/system/gitgw.service.d/test-repo.conf &&
		ln -s /lib/systemd/system/gitgw.service "$3/gitgw.service"`, "sh", env, repo.Dir, h.UnitDir); err != nil {
		t.Fatalf("configure: %v\n%s", err, b)
	}
	h.MustSystemctl(t, "daemon-reload")
	if b, err := h.Systemctl(ctx, "start", "gitgw.service"); err != nil {
		st, _ := h.Systemctl(ctx, "status", "--no-pager", "gitgw.service")
		t.Fatalf("start: %v\n%s\n%s\n%s", err, b, st, h.Log())
	}
	nicEventually(t, 90*time.Second, "the packaged agent applies the site", func() (bool, string) {
		b, err := h.Try(ctx, "/usr/bin/gitgw", "status", "--json")
		if err != nil {
			return false, err.Error() + b
		}
		var st control.Status
		if err := json.Unmarshal([]byte(b), &st); err != nil {
			return false, b
		}
		return st.Applied != "" && len(st.VRRP) == 1 && st.VRRP[0].State == "MASTER", b
	})
	nicEventually(t, 60*time.Second, "examples/lab's app@8080 (gitgw backend) answers through the VIP", func() (bool, string) {
		b, err := h.Try(ctx, "curl", "-sS", "--max-time", "2", "http://203.0.113.100/")
		return err == nil && strings.Contains(b, "gitgw backend :8080 on"), b
	})
	if b, _ := h.Try(ctx, "stat", "-c", "%U %a", "/var/lib/gitgw"); strings.TrimSpace(b) != "root 750" {
		t.Errorf("state directory: %q, want root 750 (StateDirectory=)", b)
	}

	// Remove stops the agent and keeps the conffile; purge removes both
	// and the state.
	removed, err := h.Try(ctx, "dpkg", "-r", "gitgw")
	if err != nil {
		t.Fatalf("dpkg -r: %v\n%s", err, removed)
	}
	if b, _ := h.Systemctl(ctx, "is-active", "gitgw.service"); strings.TrimSpace(b) == "active" {
		st, _ := h.Systemctl(ctx, "status", "--no-pager", "gitgw.service")
		t.Errorf("gitgw.service still active after dpkg -r:\n%s\n%s", removed, st)
	}
	if _, err := h.Try(ctx, "test", "-e", "/usr/bin/gitgw"); err == nil {
		t.Error("/usr/bin/gitgw left after dpkg -r")
	}
	if b, err := h.Try(ctx, "grep", "-q", repo.FileURL(), "/etc/gitgw/agent.env"); err != nil {
		t.Errorf("the edited conffile did not survive dpkg -r: %v %s", err, b)
	}
	if b, err := h.Try(ctx, "dpkg", "--purge", "gitgw"); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, b)
	}
	for _, p := range []string{"/etc/gitgw/agent.env", "/var/lib/gitgw"} {
		if _, err := h.Try(ctx, "test", "-e", p); err == nil {
			t.Errorf("%s left after dpkg --purge", p)
		}
	}
}

func mustOutput(t *testing.T, name string, args ...string) string {
	t.Helper()
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return string(b)
}
