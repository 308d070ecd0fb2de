package importer

import (
	"os/exec"
	"testing"

	"github.com/gitgw/gitgw/test/lab"
)

// TestHAProxyAcceptsFull: the synthetic haproxy.cfg the golden test imports
// is one HAProxy 2.6 itself accepts, so the test exercises real syntax.
func TestHAProxyAcceptsFull(t *testing.T) {
	lab.RequireCommand(t, "haproxy")
	bin, err := lab.LookPath("haproxy")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-c", "-f", "testdata/full/haproxy.cfg").CombinedOutput()
	if err != nil {
		t.Errorf("haproxy -c: %v\n%s", err, out)
	}
}
