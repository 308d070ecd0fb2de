package importer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/loader"
)

// largeConfigs writes a keepalived.conf per node with n instances and an
// haproxy.cfg with n listen sections of 8 servers each.
func largeConfigs(n int) (ka [2]string, hap string) {
	for node := range 2 {
		var b strings.Builder
		fmt.Fprintf(&b, "global_defs {\n  router_id gw%d\n}\n", node+1)
		for i := range n {
			fmt.Fprintf(&b, "vrrp_instance VI_%d {\n  state BACKUP\n  interface eth0\n  virtual_router_id %d\n  priority %d\n  advert_int 1\n"+
				"  unicast_src_ip 203.0.113.%d\n  unicast_peer {\n    203.0.113.%d\n  }\n  virtual_ipaddress {\n    198.51.100.%d/24\n  }\n}\n",
				i, i%255+1, 100+node*50, 11+node, 12-node, i%250+1)
		}
		ka[node] = b.String()
	}
	var b strings.Builder
	b.WriteString("global\n  maxconn 100000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n")
	for i := range n {
		fmt.Fprintf(&b, "listen svc%d\n  bind 198.51.100.%d:%d\n  balance leastconn\n", i, i%250+1, 1000+i)
		for s := range 8 {
			fmt.Fprintf(&b, "  server s%d 198.51.100.%d:%d check inter 2s rise 2 fall 3 weight %d\n", s, s+1, 8000+i, 10+s)
		}
	}
	return ka, b.String()
}

// BenchmarkImport measures the import of large configurations, and the
// loading of the site it writes, for a growing number of instances and
// services.
func BenchmarkImport(b *testing.B) {
	fmt.Printf("\n%-10s %12s %12s %12s %12s %8s\n", "instances", "import med", "import max", "load med", "load max", "lines")
	for _, n := range []int{10, 100, 250} {
		ka, hap := largeConfigs(n)
		opts := Options{
			Keepalived: []Input{{Node: "gw1", Path: "gw1.conf", Data: []byte(ka[0])}, {Node: "gw2", Path: "gw2.conf", Data: []byte(ka[1])}},
			HAProxy:    []Input{{Path: "haproxy.cfg", Data: []byte(hap)}},
		}
		var imp, load []time.Duration
		lines := 0
		for range 5 {
			start := time.Now()
			res, err := Import(opts)
			imp = append(imp, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			dir := b.TempDir()
			if err := WriteDir(dir, res.Files, false); err != nil {
				b.Fatal(err)
			}
			lines = 0
			for _, f := range res.Files {
				lines += strings.Count(string(f.Data), "\n")
			}
			start = time.Now()
			if _, _, err := loader.Load(context.Background(), dir, "gw1"); err != nil {
				b.Fatal(err)
			}
			load = append(load, time.Since(start))
		}
		slices.Sort(imp)
		slices.Sort(load)
		fmt.Printf("%-10d %12s %12s %12s %12s %8d\n", n, imp[len(imp)/2].Round(time.Microsecond), imp[len(imp)-1].Round(time.Microsecond),
			load[len(load)/2].Round(time.Millisecond), load[len(load)-1].Round(time.Millisecond), lines)
		b.ReportMetric(float64(imp[len(imp)/2].Microseconds()), fmt.Sprintf("import-us/%d", n))
		b.ReportMetric(float64(load[len(load)/2].Milliseconds()), fmt.Sprintf("load-ms/%d", n))
	}
}
