package loader

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cuelang.org/go/cue/cuecontext"
)

// statusKeysSite is a site's nodes as plain data: n nodes, every other one
// with a status key.
func statusKeysSite(n int) (string, []string) {
	var b strings.Builder
	var nodes []string
	b.WriteString("nodes: {\n")
	for i := range n {
		name := fmt.Sprintf("gw-%05d", i)
		nodes = append(nodes, name)
		if i%2 == 0 {
			fmt.Fprintf(&b, "\t%q: {interfaces: eth0: addresses: [\"203.0.113.1/24\"], status_key: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI%05d\"}\n", name, i)
		} else {
			fmt.Fprintf(&b, "\t%q: {interfaces: eth0: addresses: [\"203.0.113.1/24\"]}\n", name)
		}
	}
	b.WriteString("}\n")
	return b.String(), nodes
}

func TestStatusKeys(t *testing.T) {
	t.Parallel()
	src, _ := statusKeysSite(4)
	v := cuecontext.New().CompileString(src)
	got := statusKeys(v)
	if len(got) != 2 || got["gw-00000"] != "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI00000" || got["gw-00002"] == "" {
		t.Fatalf("statusKeys = %v", got)
	}
	src, _ = statusKeysSite(0)
	if got := statusKeys(cuecontext.New().CompileString(src)); got != nil {
		t.Fatalf("statusKeys of a site without keys = %v, want nil", got)
	}
}

// BenchmarkStatusKeys is what every node view pays for its peers' status
// keys: one lookup per node of the site (2,000 nodes: 1,000 pairs).
func BenchmarkStatusKeys(b *testing.B) {
	src, _ := statusKeysSite(2000)
	v := cuecontext.New().CompileString(src)
	if err := v.Err(); err != nil {
		b.Fatal(err)
	}
	statusKeys(v) // evaluate once, as the loader has
	b.ResetTimer()
	for b.Loop() {
		statusKeys(v)
	}
}

// TestStatusKeySchema: a status_key must be one SSH public key (validate
// says where it is not), and every node's view carries every node's key.
func TestStatusKeySchema(t *testing.T) {
	t.Parallel()
	const key1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBXvC2VKDlIxXRa2rJkz0ff7p3TvDVa6Ow1WQgn2hTmq gw1"
	write := func(key2 string) string {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "cue.mod"), 0o755); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{
			"cue.mod/module.cue": "module: \"example.net/keys@v0\"\nlanguage: version: \"v0.17.0\"\n",
			"site.cue": fmt.Sprintf("package site\n\nnodes: {\n\tgw1: {interfaces: eth0: addresses: [\"203.0.113.11/24\"], status_key: %q}\n"+
				"\tgw2: {interfaces: eth0: addresses: [\"203.0.113.12/24\"], status_key: %q}\n}\n", key1, key2),
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	_, _, err := Load(context.Background(), write("ssh-ed25519 AAAA\nExecStartPre=/bin/sh"), "")
	errs, ok := AsErrors(err)
	if !ok || len(errs) != 1 || errs[0].File != "site.cue" || errs[0].Line != 5 || !strings.Contains(errs[0].Error(), "status_key") {
		t.Fatalf("a malformed key: %v", err)
	}
	const key2 = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV9U2W0oIeYr1Dx3Jzq1Q="
	_, view, err := Load(context.Background(), write(key2), "gw1")
	if err != nil {
		t.Fatal(err)
	}
	if view.StatusKeys["gw1"] != key1 || view.StatusKeys["gw2"] != key2 || view.Node.StatusKey != key1 {
		t.Fatalf("view: status keys %v, own %q", view.StatusKeys, view.Node.StatusKey)
	}
}
