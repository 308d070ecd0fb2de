package reconcile

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/importer"
	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/test/lab"
)

// sideBySide starts the two halves of a behaviour comparison, both until
// the test ends: HAProxy 2.6 running hapCfg (checked with -c first, so a
// bad copy fails with HAProxy's own words), and gitgw's proxy running the
// site `gitgw import` makes of gwCfg (name is the file's name in the
// import's messages). An import that refuses anything fails the test: the
// comparison is of what the import carries.
func sideBySide(t *testing.T, name, hapCfg, gwCfg string) {
	t.Helper()
	lab.RequireCommand(t, "haproxy")
	hapPath := t.TempDir() + "/haproxy.cfg"
	if err := os.WriteFile(hapPath, []byte(hapCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, _ := lab.LookPath("haproxy")
	if out, err := exec.Command(bin, "-c", "-f", hapPath).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, hapCfg)
	}
	cmd := exec.Command(bin, "-db", "-f", hapPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })

	res, err := importer.Import(importer.Options{HAProxy: []importer.Input{{Path: name, Data: []byte(gwCfg)}}, Nodes: []string{"gw1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Refused) > 0 {
		t.Fatalf("refused: %v", res.Refused)
	}
	dir := t.TempDir()
	if err := importer.WriteDir(dir, res.Files, false); err != nil {
		t.Fatal(err)
	}
	_, view, err := loader.Load(context.Background(), dir, "gw1")
	if err != nil {
		t.Fatalf("load the import: %v", err)
	}
	pcfg, err := ProxyConfig(view)
	if err != nil {
		t.Fatal(err)
	}
	pool := l4proxy.New(nil, l4proxy.Options{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = pool.Close(ctx)
	})
	if err := pool.Set(context.Background(), pcfg); err != nil {
		t.Fatal(err)
	}
}
