package reconcile

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/dataplane/vrrp"
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

// recordConn is the VRRP engine's packet connection (its injected seam)
// with nobody else on the segment: it keeps the priority of every advert
// the engine sends, in order.
type recordConn struct {
	nullConn
	mu   sync.Mutex
	sent []uint8
}

func (c *recordConn) Write(msg []byte, src, dst netip.Addr) error {
	p, _, err := vrrp.Decode(msg, src, dst)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.sent = append(c.sent, p.Priority)
	c.mu.Unlock()
	return nil
}

func (c *recordConn) zeroSent() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.sent, 0)
}

// TestPrepareStopOrder: on a stop, the master's priority-0 advert goes out
// before the proxy's connections are handed over (which takes seconds
// under load): the peer takes over at once, not after the hand-over. And
// the hand-over happens, VRRP or not. The engine and its driver are the
// real ones; only the packet connection is recorded.
func TestPrepareStopOrder(t *testing.T) {
	conn := &recordConn{nullConn: nullConn{closed: make(chan struct{})}}
	e := vrrp.New(nil, vrrp.Options{
		Listen:      func(string, bool) (vrrp.Conn, error) { return conn, nil },
		PrimaryAddr: func(string, bool) (netip.Addr, error) { return netip.MustParseAddr("203.0.113.11"), nil },
		VIPs:        &memVIPs{have: map[netip.Prefix]bool{}},
	})
	vd, err := NewVRRPDriver(VRRPOptions{Engine: e})
	if err != nil {
		t.Fatal(err)
	}
	vd.own = true // as the agent's driver: its Close stops the engine
	t.Cleanup(func() { _ = vd.Close(context.Background()) })
	if err := vd.Apply(t.Context(), labNode(t, "gw1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(20 * time.Second)
	for master := false; !master; {
		select {
		case ev := <-vd.Events():
			master = ev.Kind == "transition" && strings.Contains(ev.Message, "VI_1 BACKUP -> MASTER")
		case <-deadline:
			t.Fatal("gw1 never became master")
		}
	}
	if conn.zeroSent() {
		t.Fatal("priority 0 sent before the stop")
	}
	// No systemd answers: a stop, not a restart.
	d := &Drivers{vrrp: vd, systemdSocket: filepath.Join(t.TempDir(), "no-systemd")}
	handedOver, zeroFirst := false, false
	d.PrepareStop(slog.New(slog.DiscardHandler), func() { handedOver, zeroFirst = true, conn.zeroSent() })
	if !handedOver {
		t.Fatal("the connections were not handed over")
	}
	if !zeroFirst {
		t.Error("the proxy's connections were handed over before VRRP's priority 0 went out")
	}
	if !conn.zeroSent() {
		t.Error("no priority 0 sent on a stop")
	}

	handedOver = false
	(&Drivers{}).PrepareStop(slog.New(slog.DiscardHandler), func() { handedOver = true })
	if !handedOver {
		t.Error("without VRRP, the connections were not handed over")
	}
}
