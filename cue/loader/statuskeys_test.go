package loader

import (
	"fmt"
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
