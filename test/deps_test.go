package test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyRules enforces the layering of STYLE.md on the packages'
// direct imports: each outside library has exactly one home, and no
// subsystem reaches back into reconcile.
func TestDependencyRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "github.com/gitgw/gitgw/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/gitgw/gitgw/"
	rules := []struct {
		name    string
		imports func(string) bool
		allowed func(string) bool
	}{
		{"go-git only in reconcile/gitrepo",
			prefix("github.com/go-git/"),
			in("reconcile/gitrepo", "test/gitremote")},
		{"cuelang.org only in cue/loader and cue/schema",
			prefix("cuelang.org/"),
			in("cue/loader", "cue/schema")},
		{"go-systemd only in units",
			prefix("github.com/coreos/go-systemd/"),
			in("units", "test/systemd")},
		{"netlink/arp/x/sys/unix only in dataplane",
			func(p string) bool {
				return strings.HasPrefix(p, "github.com/vishvananda/") || strings.HasPrefix(p, "github.com/mdlayher/") || p == "golang.org/x/sys/unix"
			},
			in("dataplane", "test")},
		{"nftables and conntrack only in the kernel forwarding driver",
			func(p string) bool {
				return strings.HasPrefix(p, "github.com/google/nftables") || strings.HasPrefix(p, "github.com/ti-mo/")
			},
			in("dataplane/kernlb", "dataplane/ctsync")},
		{"no subsystem imports reconcile",
			func(p string) bool {
				return p == mod+"reconcile" || strings.HasPrefix(p, mod+"reconcile/") && !strings.HasPrefix(p, mod+"reconcile/plan")
			},
			func(pkg string) bool {
				return !(hasRel(pkg, "cue") || hasRel(pkg, "policies") || hasRel(pkg, "units") || hasRel(pkg, "dataplane"))
			}},
		{"data plane and units know nothing of CUE, Git or plans",
			func(p string) bool {
				return strings.HasPrefix(p, mod+"cue/") || strings.HasPrefix(p, mod+"reconcile")
			},
			func(pkg string) bool { return !(hasRel(pkg, "units") || hasRel(pkg, "dataplane")) }},
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := f[0], f[1:]
		for _, r := range rules {
			for _, imp := range imports {
				if r.imports(imp) && !r.allowed(pkg) {
					t.Errorf("%s: %s imports %s", r.name, pkg, imp)
				}
			}
		}
	}
}

func prefix(p string) func(string) bool {
	return func(s string) bool { return strings.HasPrefix(s, p) }
}

// in allows packages under any of the given module-relative directories.
func in(dirs ...string) func(string) bool {
	return func(pkg string) bool {
		for _, d := range dirs {
			if hasRel(pkg, d) {
				return true
			}
		}
		return false
	}
}

func hasRel(pkg, dir string) bool {
	full := "github.com/gitgw/gitgw/" + dir
	return pkg == full || strings.HasPrefix(pkg, full+"/")
}
