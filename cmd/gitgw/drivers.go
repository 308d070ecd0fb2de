package main

import (
	"os"

	"github.com/spf13/pflag"

	"github.com/gitgw/gitgw/internal/sdnotify"
	"github.com/gitgw/gitgw/reconcile"
)

// driverFlags locate what the drivers talk to.
type driverFlags struct {
	unitDir, systemdSocket string
}

func (f *driverFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.unitDir, "unit-dir", "/etc/systemd/system", "where gitgw writes the site's template units")
	fl.StringVar(&f.systemdSocket, "systemd-socket", "", "systemd's private socket to use instead of the system bus (tests, containers)")
}

// buildDrivers builds the node's drivers (reconcile.BuildDrivers) with
// what only the process knows: the listening sockets systemd handed over,
// and how to run this binary as the VRRP guardian.
func buildDrivers(cfg reconcile.DriverConfig) *reconcile.Drivers {
	cfg.Inherited = sdnotify.Listeners()
	if cfg.Live && cfg.StateDir != "" {
		self, err := os.Executable()
		if err != nil {
			self = os.Args[0]
		}
		cfg.Guardian = []string{self, "vrrp", "guard", "--state-dir", cfg.StateDir}
	}
	return reconcile.BuildDrivers(cfg)
}
