package importer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/lab"
)

// TestCILinuxSkippedAsKeepalivedDoes: keepalived 2.x no longer knows the
// CI-LINUX checker; it says "Unknown keyword" and runs the real server
// without a checker. The import does the same, and says so, where it
// refused the file before. The claim is held to the peer's own parser.
func TestCILinuxSkippedAsKeepalivedDoes(t *testing.T) {
	const vs = "virtual_server 203.0.113.1 80 {\n lb_kind NAT\n lb_algo rr\n protocol TCP\n real_server 198.51.100.2 80 {\n  CI-LINUX\n }\n}\n"
	lab.RequireCommand(t, "keepalived")
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(vs), 0o644); err != nil {
		t.Fatal(err)
	}
	// -t reports the unknown keyword (and exits non-zero for it); the
	// daemon itself logs the same line and goes on.
	out, _ := exec.Command("keepalived", "-t", "-l", "-D", "-f", path).CombinedOutput()
	if !strings.Contains(string(out), "Line 6) Unknown keyword 'CI-LINUX'") {
		t.Fatalf("keepalived -t does not skip CI-LINUX as an unknown keyword:\n%s", out)
	}
	res := importText(t, "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  203.0.113.1/24\n }\n}\n"+vs, "")
	if len(res.Refused) > 0 {
		t.Fatalf("refused: %v", res.Refused)
	}
	warned := false
	for _, w := range res.Warnings {
		warned = warned || (w.Pos.Line == 13 && strings.Contains(w.Msg, "CI-LINUX: keepalived 2.x does not know"))
	}
	var svc string
	for _, f := range res.Files {
		if f.Name == "services.cue" {
			svc = string(f.Data)
		}
	}
	if !warned || !strings.Contains(svc, "unchecked: true") {
		t.Errorf("CI-LINUX not warned at line 13, or the service not unchecked:\n%s", goldenText(res))
	}
}
