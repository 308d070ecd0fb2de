package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// genSite writes a synthetic site of n gateway pairs into dir, in files of
// five pairs (one L2 segment each), as a large operator would split it.
// Each pair: two gateways, two VRRP instances (one master each), two
// services with five servers each, and six unit instances per node.
func genSite(t testing.TB, dir string, pairs int) {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "cue.mod"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "cue.mod", "module.cue"), []byte("module: \"example.net/gen@v0\"\nlanguage: version: \"v0.17.0\"\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "common.cue"), []byte(`package site

site: name: "generated"

nodes: [_]: tuning: {
	interfaces: eth0: {rps_cpus: "all", rps_flow_cnt: 4096}
	sysctls: {"net.ipv4.ip_forward": 1, "net.ipv4.ip_nonlocal_bind": 1}
}

units: app: {
	description: "backend %i"
	exec_start:  "/usr/local/bin/app --port %i"
	instances: [{ports: {from: 8080, to: 8085}}]
}
`), 0o644))
	for seg := 0; seg*5 < pairs; seg++ {
		var b strings.Builder
		b.WriteString("package site\n\n")
		for p := seg * 5; p < pairs && p < seg*5+5; p++ {
			a, z := fmt.Sprintf("gw-%05da", p), fmt.Sprintf("gw-%05db", p)
			// 203.0.113.0/24 is too small for thousands of pairs: each
			// pair gets a /64 of the IPv6 documentation prefix.
			fmt.Fprintf(&b, "nodes: %q: interfaces: eth0: addresses: [\"2001:db8:%x::1/64\"]\n", a, p)
			fmt.Fprintf(&b, "nodes: %q: interfaces: eth0: addresses: [\"2001:db8:%x::2/64\"]\n", z, p)
			for i, m := range []string{a, z} {
				other := z
				if m == z {
					other = a
				}
				fmt.Fprintf(&b, `vrrp: "vi-%05d-%d": {
	interface: "eth0"
	vrid: %d
	advert_interval: "100ms"
	nodes: {%q: priority: 150, %q: priority: 100}
	vips: ["2001:db8:%x::%x/64"]
	// IPv6 adverts leave from the gateways' link-local addresses.
	allow_sources: ["fe80::%x:1", "fe80::%x:2"]
}
`, p, i, 1+i, m, other, p, 0x100+i, p, p)
				fmt.Fprintf(&b, "services: \"svc-%05d-%d\": {\n\tnodes: [%q, %q]\n\tbinds: [\"[2001:db8:%x::%x]:80\"]\n\tcheck: {kind: \"http\", path: \"/health\"}\n\tservers: {\n", p, i, a, z, p, 0x100+i)
				for s := 0; s < 5; s++ {
					fmt.Fprintf(&b, "\t\ts%d: address: \"[2001:db8:%x::%x]:8080\"\n", s, p, 0x10+s)
				}
				b.WriteString("\t}\n}\n")
			}
		}
		must(os.WriteFile(filepath.Join(dir, fmt.Sprintf("seg-%04d.cue", seg)), []byte(b.String()), 0o644))
	}
}

func TestGeneratedSiteIsValid(t *testing.T) {
	dir := t.TempDir()
	genSite(t, dir, 12)
	out, errOut, code := runGitgw(t, "validate", "--site", dir)
	if code != 0 {
		t.Fatalf("generated site invalid: %s%s", out, errOut)
	}
}
