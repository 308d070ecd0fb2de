// Command demo is `sudo make demo`: the seed architecture (two gateways,
// active-active, a TCP service on both VIPs over app@ units) in network
// namespaces, each gateway a host of its own with systemd as PID 1 running
// packaging/gitgw.service. It narrates the plan, the first apply, traffic
// through the VIPs, a master killed and the failover, a push and its
// convergence, a change by hand and its drift commit, and the fleet view,
// then removes everything it created, also on failure or Ctrl-C.
//
// It only uses 203.0.113.0/24 and 198.51.100.0/24 inside its namespaces
// and never touches the host's interfaces, sysctls or service manager.
//
// Usage (as root): go run ./test/demo --gitgw bin/gitgw [--keep-logs DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	var o options
	flag.StringVar(&o.Gitgw, "gitgw", "bin/gitgw", "the gitgw binary to run on the gateways")
	flag.StringVar(&o.KeepLogs, "keep-logs", os.Getenv("KEEP_LOGS"), "keep the gateways' console logs and status branches in this directory (default $KEEP_LOGS)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.Out = os.Stdout
	o.TTY = isTerminal(os.Stdout)
	var err error
	if o.Root, err = moduleRoot(); err == nil {
		o.Gitgw, err = filepath.Abs(o.Gitgw)
	}
	if err == nil {
		err = run(ctx, o)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

// moduleRoot finds the gitgw module from the current directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "packaging", "gitgw.service")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("run the demo from the gitgw repository (make demo)")
		}
		dir = up
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
