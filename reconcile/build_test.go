package reconcile

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/test/lab"
)

// TestBuildDrivers builds the drivers in a throwaway namespace with no
// systemd to talk to: one driver per family in apply order, the units
// family pending with the reason, and the engines given by value (the
// very ones the drivers run), so that nobody digs them out again.
func TestBuildDrivers(t *testing.T) {
	ns := lab.NewNetns(t, "bld")
	var d *Drivers
	err := ns.Do(func() error {
		d = BuildDrivers(DriverConfig{StateDir: t.TempDir(), UnitDir: t.TempDir(),
			SystemdSocket: filepath.Join(t.TempDir(), "no-systemd")})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.Close(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	var names []string
	for _, drv := range d.List {
		names = append(names, drv.Name())
	}
	if diff := cmp.Diff([]string{"tuning", "realserver", "units", "proxy", "kernlb", "vrrp"}, names); diff != "" {
		t.Fatalf("families (-want +got):\n%s", diff)
	}
	if _, ok := d.List[1].(*RealServerDriver); !ok {
		t.Errorf("the real server's driver: %#v", d.List[1])
	}
	if p, ok := d.List[2].(Pending); !ok || !strings.HasPrefix(p.Why, "driver unavailable: ") {
		t.Errorf("units without systemd: %#v, want Pending with the reason", d.List[2])
	}
	if pd, ok := d.List[3].(*ProxyDriver); !ok || d.Pool == nil || pd.Pool() != d.Pool {
		t.Errorf("Drivers.Pool is not the proxy driver's pool")
	}
	if kd, ok := d.List[4].(*KernLBDriver); !ok || d.KernLB == nil || kd != d.KernLB {
		t.Errorf("Drivers.KernLB is not the kernel driver")
	}
	if vd, ok := d.List[5].(*VRRPDriver); !ok || d.Engine == nil || vd.Engine() != d.Engine {
		t.Errorf("Drivers.Engine is not the VRRP driver's engine")
	}
}
