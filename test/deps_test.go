package test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyRules enforces the layering of STYLE.md: each outside
// library has exactly one home (direct imports), and no subsystem reaches
// back into reconcile, nor a child into its parent (every dependency,
// direct or not: what `go list -deps` walks).
func TestDependencyRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}|{{join .Deps " "}}`, "github.com/gitgw/gitgw/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/gitgw/gitgw/"
	rules := []struct {
		name    string
		imports func(string) bool
		allowed func(string) bool
		// deps applies the rule to every dependency, not only the
		// direct imports: a forbidden arrow through a third package
		// is still that arrow.
		deps bool
	}{
		{"go-git only in reconcile/gitrepo",
			prefix("github.com/go-git/"),
			in("reconcile/gitrepo", "test/gitremote"),
			false},
		{"cuelang.org only in cue/loader and cue/schema",
			prefix("cuelang.org/"),
			in("cue/loader", "cue/schema"),
			false},
		{"go-systemd only in units",
			prefix("github.com/coreos/go-systemd/"),
			in("units", "test/systemd"),
			false},
		{"netlink/arp/x/sys/unix only in dataplane",
			func(p string) bool {
				return strings.HasPrefix(p, "github.com/vishvananda/") || strings.HasPrefix(p, "github.com/mdlayher/") || p == "golang.org/x/sys/unix"
			},
			in("dataplane", "test"),
			false},
		{"nftables only in the kernel forwarding driver and the proxy's transparent mode (its mark table)",
			func(p string) bool { return strings.HasPrefix(p, "github.com/google/nftables") },
			in("dataplane/kernlb", "dataplane/l4proxy"),
			false},
		{"conntrack only in the kernel forwarding driver and its sync",
			func(p string) bool { return strings.HasPrefix(p, "github.com/ti-mo/") },
			in("dataplane/kernlb", "dataplane/ctsync"),
			false},
		{"no subsystem imports reconcile",
			func(p string) bool {
				return p == mod+"reconcile" || strings.HasPrefix(p, mod+"reconcile/") && !strings.HasPrefix(p, mod+"reconcile/plan")
			},
			func(pkg string) bool {
				return !(hasRel(pkg, "cue") || hasRel(pkg, "policies") || hasRel(pkg, "units") || hasRel(pkg, "dataplane"))
			},
			true},
		{"data plane and units know nothing of CUE, Git or plans",
			func(p string) bool {
				return strings.HasPrefix(p, mod+"cue/") || strings.HasPrefix(p, mod+"reconcile")
			},
			func(pkg string) bool { return !(hasRel(pkg, "units") || hasRel(pkg, "dataplane")) },
			true},
		{"reconcile/control consumes interfaces it declares; it does not import its parent",
			func(p string) bool { return p == mod+"reconcile" },
			func(pkg string) bool { return !hasRel(pkg, "reconcile/control") },
			true},
		{"policies are pure: no data plane behind them",
			prefix(mod + "dataplane/"),
			func(pkg string) bool { return !hasRel(pkg, "policies") },
			true},
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, rest, _ := strings.Cut(line, "|")
		direct, deps, _ := strings.Cut(rest, "|")
		for _, r := range rules {
			imports := strings.Fields(direct)
			if r.deps {
				imports = strings.Fields(deps)
			}
			verb := "imports"
			if r.deps {
				verb = "depends on"
			}
			for _, imp := range imports {
				if r.imports(imp) && !r.allowed(pkg) {
					t.Errorf("%s: %s %s %s", r.name, pkg, verb, imp)
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
