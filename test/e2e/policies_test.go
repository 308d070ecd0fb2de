package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// policySite writes the lab site with a second VRRP instance whose VRID
// is VI_1's: both virtual routers would fight over one virtual MAC on
// 203.0.113.0/24. The schema accepts it; the vrid-unique guardrail does not.
func policySite(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"cue.mod/module.cue": "module: \"example.net/policies@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

nodes: {
	gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]
	gw2: interfaces: eth0: addresses: ["203.0.113.12/24"]
}
vrrp: VI_1: {
	interface: "eth0", vrid: 51
	nodes: {gw1: priority: 150, gw2: priority: 100}
	vips: ["203.0.113.100/24"]
}
vrrp: VI_2: {
	interface: "eth0"
	vrid:      51
	nodes: {gw1: priority: 100, gw2: priority: 150}
	vips: ["203.0.113.101/24"]
}
services: web: {
	binds: ["203.0.113.100:80"]
	servers: {s1: address: "198.51.100.11:8080", s2: address: "198.51.100.12:8080"}
	check: kind: "tcp"
}
` + extra,
	}
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

const vridLine = "site.cue:14:13: vrrp.VI_2.vrid: [vrid-unique] VRID 51 (IPv4) is also instance VI_1's on segment 203.0.113.0/24 on eth0: two virtual routers with one VRID fight over one virtual MAC"

// TestPolicyGuardrailRefused: validate and plan refuse a site that breaks
// a guardrail, exit 1, with one positioned line naming the policy; with the
// guardrail disabled by name, both accept it.
func TestPolicyGuardrailRefused(t *testing.T) {
	dir := policySite(t, "")
	out, errOut, code := runGitgw(t, "validate", "--site", dir)
	if code != 1 || strings.TrimSpace(out) != vridLine {
		t.Errorf("validate: exit %d, want 1\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", code, out, errOut, vridLine)
	}
	for _, node := range []string{"gw1", "gw2"} {
		out, errOut, code = runGitgw(t, "plan", "--site", dir, "--node", node, "--no-color")
		if code != 1 || !strings.Contains(errOut, vridLine+"\n") {
			t.Errorf("plan %s: exit %d, want 1\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", node, code, out, errOut, vridLine)
		}
		if strings.Contains(out, "203.0.113.101") {
			t.Errorf("plan %s printed a plan for a refused site:\n%s", node, out)
		}
	}

	dir = policySite(t, "site: policies: disable: [\"vrid-unique\"]\n")
	if out, errOut, code := runGitgw(t, "validate", "--site", dir); code != 0 {
		t.Errorf("validate with vrid-unique disabled: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := runGitgw(t, "plan", "--site", dir, "--node", "gw1", "--json"); code != 0 || !strings.Contains(out, "VI_2") {
		t.Errorf("plan with vrid-unique disabled: exit %d\n%s%s", code, out, errOut)
	}
}

// TestPolicySitePolicies: organisation rules in policies/*.cue refuse a
// site that the built-in guardrails accept, positioned at the site's value
// with the rule's name.
func TestPolicySitePolicies(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "cue/loader/testdata/site-policies")
	want := "site.cue:10:19: vrrp.VI_1.version: [vrrpv3] conflicting values 3 and 2\n" +
		"site.cue:15:11: services.web: [min_servers] service web has 2 servers; at least 3 are required\n"
	out, errOut, code := runGitgw(t, "validate", "--site", dir)
	if code != 1 || out != want {
		t.Errorf("validate: exit %d, want 1\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", code, out, errOut, want)
	}
	out, errOut, code = runGitgw(t, "plan", "--site", dir, "--node", "gw1", "--no-color")
	if code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("plan: exit %d, want 1\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", code, out, errOut, want)
	}
}

// TestPolicySecretNotPrinted: a VRRP password written in the site is a
// warning (the site is still accepted) and is never printed.
func TestPolicySecretNotPrinted(t *testing.T) {
	const secret = "Zq7pass"
	dir := t.TempDir()
	files := map[string]string{
		"cue.mod/module.cue": "module: \"example.net/policies@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

nodes: {
	gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]
	gw2: interfaces: eth0: addresses: ["203.0.113.12/24"]
}
vrrp: VI_1: {
	interface: "eth0", vrid: 51, version: 2, advert_interval: "1s"
	auth: {type: "pass", password: "` + secret + `"}
	nodes: {gw1: priority: 150, gw2: priority: 100}
	vips: ["203.0.113.100/24"]
}
`,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := runGitgw(t, "validate", "--site", dir)
	want := "warning: site.cue:9:33: vrrp.VI_1.auth.password: [secret-in-clear]"
	if code != 0 || !strings.Contains(errOut, want) {
		t.Errorf("validate: exit %d, want 0 and %q\nstdout:\n%s\nstderr:\n%s", code, want, out, errOut)
	}
	for _, args := range [][]string{
		{"validate", "--site", dir},
		{"plan", "--site", dir, "--node", "gw1", "--no-color"},
		{"plan", "--site", dir, "--node", "gw1", "--json"},
		{"plan", "--site", dir, "--node", "gw1", "--no-color", "-v"},
	} {
		out, errOut, code := runGitgw(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		if strings.Contains(out+errOut, secret) {
			t.Errorf("%v printed the password:\n%s%s", args, out, errOut)
		}
		if args[0] == "plan" && !strings.Contains(errOut, "secret-in-clear") {
			t.Errorf("%v: no warning logged:\n%s", args, errOut)
		}
	}
}

// TestAgentRefusesGuardrail: the agent refuses a pushed commit that breaks
// a guardrail; the error is in its log and on the status branch with its
// position and the policy's name, and the last good commit keeps running.
// The site holds no VIP, bind, unit or tuning the agent could apply to the
// host: the only tuning is in the refused commit.
func TestAgentRefusesGuardrail(t *testing.T) {
	l := newStatusLab(t)
	site := func(extra string) map[string]string {
		return map[string]string{
			"cue.mod/module.cue": "module: \"example.net/policies@v0\"\nlanguage: version: \"v0.17.0\"\n",
			"site.cue": "package site\n\nnodes: {\n\tgw1: interfaces: eth0: addresses: [\"203.0.113.11/24\"]\n" +
				"\tgw2: interfaces: eth0: addresses: [\"203.0.113.12/24\"]\n}\n" + extra,
		}
	}
	good := l.repo.Commit(t, "main", site(""), "two nodes, nothing to run")
	// No control socket or status page: the defaults need root, and another
	// test's agent may hold them.
	a := l.startAgent(t, "--socket", "", "--listen", "")
	l.waitSubject(t, a, regexp.MustCompile(`^(apply|status)\(gw1\): `+good[:7]))

	broken := l.repo.Commit(t, "main", site("nodes: gw1: tuning: interfaces: eth0: irq_cpus: \"3-1\"\n"), "irq cpus")
	const want = `site.cue:7:49: nodes.gw1.tuning.interfaces.eth0.irq_cpus: [cpu-mask] CPU list "3-1": range "3-1" runs backwards`
	rej := l.waitSubject(t, a, regexp.MustCompile(`^error\(gw1\): `+broken[:7]+` rejected`))
	if !strings.Contains(rej.Message, want) {
		t.Errorf("status commit lacks %q:\n%s", want, rej.Message)
	}
	var st struct {
		Applied  string `json:"applied_commit"`
		LastPass struct {
			Outcome string
			Errors  []struct {
				File      string
				Line, Col int
				Path, Msg string
			}
		} `json:"last_pass"`
	}
	if err := json.Unmarshal([]byte(l.repo.Show(t, rej.Hash, "status.json")), &st); err != nil {
		t.Fatal(err)
	}
	if e := st.LastPass.Errors; st.LastPass.Outcome != "rejected" || len(e) != 1 || e[0].File != "site.cue" || e[0].Line != 7 ||
		!strings.HasPrefix(e[0].Msg, "[cpu-mask] ") {
		t.Errorf("status.json of the refused pass: %+v", st.LastPass)
	}
	if !strings.Contains(a.stderr(), "[cpu-mask]") {
		t.Errorf("the agent's log does not name the policy:\n%s", a.stderr())
	}
}
