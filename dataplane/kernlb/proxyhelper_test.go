package kernlb

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/test/lab"
)

// The test binary doubles as gitgw's proxy in a process of its own, for
// BenchmarkKernLBConnRate's third column: with KERNLB_PROXY_CONFIG naming
// a JSON l4proxy.Config, TestMain runs an l4proxy pool with it, prints
// "ready" once it serves and exits on SIGTERM. A process of its own, like
// HAProxy, so that its CPU is read from /proc like HAProxy's and not mixed
// with the load generator's.
func TestMain(m *testing.M) {
	if path := os.Getenv("KERNLB_PROXY_CONFIG"); path != "" {
		os.Exit(proxyMain(path))
	}
	os.Exit(m.Run())
}

func proxyMain(path string) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	raw, err := os.ReadFile(path)
	if err != nil {
		logger.Error("read config", "err", err)
		return 2
	}
	var cfg l4proxy.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		logger.Error("parse config", "err", err)
		return 2
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	// One shard, as HAProxy runs one thread (GOMAXPROCS=1 from the caller).
	p := l4proxy.New(logger, l4proxy.Options{Shards: 1})
	if err := p.Set(context.Background(), cfg); err != nil {
		logger.Error("set", "err", err)
		return 1
	}
	fmt.Println("ready")
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.Close(ctx)
	return 0
}

// startProxyIn runs gitgw's proxy in ns on bind, over servers (no health
// check: the benchmark's servers are up), and returns its process once it
// serves. It is killed when the test ends.
func startProxyIn(tb testing.TB, ns *lab.Netns, bind string, servers []string) *exec.Cmd {
	tb.Helper()
	svc := l4proxy.Service{Name: "web", Binds: []netip.AddrPort{netip.MustParseAddrPort(bind)}}
	for i, s := range servers {
		svc.Servers = append(svc.Servers, l4proxy.Server{Name: fmt.Sprintf("s%d", i+1), Addr: netip.MustParseAddrPort(s), Weight: 1})
	}
	raw, err := json.Marshal(l4proxy.Config{Services: []l4proxy.Service{svc}})
	if err != nil {
		tb.Fatal(err)
	}
	path := tb.TempDir() + "/proxy.json"
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		tb.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.Name, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "KERNLB_PROXY_CONFIG="+path, "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start gitgw's proxy in %s: %v", ns.Name, err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		tb.Fatalf("gitgw's proxy in %s: %q, %v", ns.Name, line, err)
	}
	return cmd
}
