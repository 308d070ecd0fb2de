package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
)

func seed001() Request {
	td := filepath.Join("testdata", "seed001")
	return Request{
		Keepalived: []string{"lb1=" + filepath.Join(td, "keepalived-master.conf"), filepath.Join(td, "keepalived-backup.conf")},
		Nodes:      []string{"lb2"},
		HAProxy:    []string{filepath.Join(td, "haproxy.cfg")},
	}
}

// TestRunCheck: the check runs on the site as written; its warnings are
// printed and counted with the import's own, and its errors make the
// import incomplete, each positioned in the written files.
func TestRunCheck(t *testing.T) {
	ctx := context.Background()
	var checked *loader.Site
	warnOnly := func(_ context.Context, s *loader.Site, warn io.Writer) (loader.Errors, error) {
		checked = s
		fmt.Fprintln(warn, "warning: vrrp.cue:1:1: first")
		fmt.Fprintln(warn, "warning: vrrp.cue:2:1: second")
		return nil, nil
	}
	// seed001's keepalived.conf only: its haproxy.cfg routes by Host
	// (use_backend), which is refused, so that site never passes.
	req := seed001()
	req.HAProxy = nil
	req.Out, req.Check = t.TempDir(), warnOnly
	var stdout, stderr bytes.Buffer
	if err := Run(ctx, req, &stdout, &stderr); err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr.String())
	}
	if checked == nil || checked.Dir != req.Out {
		t.Fatalf("the check did not get the written site: %+v", checked)
	}
	printed := strings.Count(stderr.String(), "warning: ")
	if !strings.Contains(stderr.String(), fmt.Sprintf("2 nodes (lb1, lb2), %d warnings; it passes gitgw validate\n", printed)) || printed < 2 {
		t.Errorf("the summary does not count the %d warnings printed:\n%s", printed, stderr.String())
	}
	if !strings.Contains(stdout.String(), filepath.Join(req.Out, "site.cue")+"\n") {
		t.Errorf("stdout does not list site.cue:\n%s", stdout.String())
	}

	bad := func(context.Context, *loader.Site, io.Writer) (loader.Errors, error) {
		return loader.Errors{{File: "vrrp.cue", Line: 3, Col: 5, Path: "vrrp.VI_1", Msg: "[vips-in-subnet] no"}}, nil
	}
	req.Out, req.Check = t.TempDir(), bad
	stderr.Reset()
	err := Run(ctx, req, io.Discard, &stderr)
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Run with a guardrail error: %v, want ErrIncomplete", err)
	}
	for _, want := range []string{"guardrail: " + filepath.Join(req.Out, "vrrp.cue:3:5"), "NOT a working site yet: 1 guardrail errors remain"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestRunSyntaxError: a truncated file is an error naming the file, and
// nothing is written.
func TestRunSyntaxError(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "unicast", "gw1.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cut := filepath.Join(dir, "gw1.conf")
	if err := os.WriteFile(cut, src[:len(src)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "site")
	var stderr bytes.Buffer
	err = Run(context.Background(), Request{Keepalived: []string{"gw1=" + cut}, Out: out}, io.Discard, &stderr)
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(stderr.String(), "error: "+cut+":") || !strings.Contains(stderr.String(), "nothing written") {
		t.Errorf("Run: %v, want ErrIncomplete with a positioned syntax error\n%s", err, stderr.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the site was written: %v", err)
	}
}

// TestRequestOptions: unnamed keepalived files take the names in order,
// a name left over is an error, and --from-host reads the host's
// addresses for the node it names (the first node by default).
func TestRequestOptions(t *testing.T) {
	req := seed001()
	opts, err := req.options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Keepalived[0].Node != "lb1" || opts.Keepalived[1].Node != "lb2" || opts.HAProxy[0].Node != "" || len(opts.Nodes) != 0 {
		t.Errorf("nodes: %q %q %q %v", opts.Keepalived[0].Node, opts.Keepalived[1].Node, opts.HAProxy[0].Node, opts.Nodes)
	}
	req.Nodes = []string{"lb2", "lb3"}
	if _, err := req.options(); err == nil || !strings.Contains(err.Error(), "lb3 left over") {
		t.Errorf("names left over: %v", err)
	}
	if _, err := (Request{}).options(); err == nil || !strings.Contains(err.Error(), "at least one") {
		t.Errorf("nothing to import: %v", err)
	}
	host := map[string][]netip.Prefix{"eth0": {netip.MustParsePrefix("192.168.1.192/24")}}
	for from, want := range map[string]string{FirstNode: "lb1", "lb2": "lb2"} {
		req := seed001()
		req.FromHost, req.HostAddresses = from, func() (map[string][]netip.Prefix, error) { return host, nil }
		opts, err := req.options()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := opts.Hosts[want]; !ok || len(opts.Hosts) != 1 {
			t.Errorf("--from-host %q: hosts %v, want %s's", from, opts.Hosts, want)
		}
	}
}

func TestSplitNamed(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "a=b.conf")
	if err := os.WriteFile(odd, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for arg, want := range map[string][2]string{
		"gw1=/etc/keepalived.conf": {"gw1", "/etc/keepalived.conf"},
		"/etc/keepalived.conf":     {"", "/etc/keepalived.conf"},
		odd:                        {"", odd}, // a file with '=' in its name
		"-x=/f":                    {"", "-x=/f"},
	} {
		if n, p := SplitNamed(arg); n != want[0] || p != want[1] {
			t.Errorf("SplitNamed(%q) = %q, %q; want %q, %q", arg, n, p, want[0], want[1])
		}
	}
}
