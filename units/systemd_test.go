package units

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
	sdharness "github.com/gitgw/gitgw/test/systemd"
)

// appTemplate is a template whose instances serve HTTP on port %i.
func appTemplate(name, version string, instances ...string) Template {
	return Template{
		Name: name,
		Unit: UnitSection{Description: "test app %i", After: []string{"network.target"},
			// The roll and the drift tests restart instances many times.
			StartLimitBurst: 100},
		Service: ServiceSection{
			Type:         "exec",
			ExecStart:    serverBin + " serve %i",
			Environment:  map[string]string{serveEnv: "1", "VERSION": version},
			Restart:      "on-failure",
			RestartDelay: 200 * time.Millisecond,
		},
		Install:   InstallSection{WantedBy: []string{"multi-user.target"}},
		Instances: instances,
	}
}

func newTestManager(t *testing.T, h *sdharness.Systemd, opts Options) *Manager {
	t.Helper()
	conn := dialHarness(t, h)
	if opts.Settle == 0 {
		opts.Settle = 200 * time.Millisecond
	}
	// Resync signals of the test's own Set calls are not waited out.
	opts.Quiet = time.Nanosecond
	m, err := New(context.Background(), conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// cleanupTemplate stops every instance of a template and removes its files
// at the end of a test, through the harness (not through the code under test).
func cleanupTemplate(t *testing.T, h *sdharness.Systemd, dir, name string) {
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = h.Systemctl(ctx, "stop", name+"@*.service")
		_, _ = h.Systemctl(ctx, "reset-failed", name+"@*.service")
		_ = os.Remove(filepath.Join(dir, name+"@.service"))
		_, _ = h.Systemctl(ctx, "daemon-reload")
	})
}

func states(t *testing.T, c Conn, units []string) map[string]UnitState {
	t.Helper()
	sts, err := c.States(context.Background(), units)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]UnitState{}
	for _, s := range sts {
		out[s.Name] = s
	}
	return out
}

func findAction(acts []Action, id string) (Action, bool) {
	for _, a := range acts {
		if a.ID == id {
			return a, true
		}
	}
	return Action{}, false
}

func TestSystemdLifecycle(t *testing.T) {
	h := needHarness(t)
	ctx := context.Background()
	name := "app1"
	dir := h.UnitDir
	cleanupTemplate(t, h, dir, name)
	m := newTestManager(t, h, Options{})
	conn := m.conn

	ports := Ports(18080, 18085)
	tmpl := appTemplate(name, "v1", ports...)
	cfg := Config{UnitDir: dir, Templates: []Template{tmpl}}

	// Plan from nothing: the file and six instances to create.
	acts, err := m.Plan(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := findAction(acts, "app1@.service"); a.Op != OpCreate || len(a.Diff) == 0 {
		t.Fatalf("plan for the template: %+v", a)
	}
	for _, u := range tmpl.UnitNames() {
		if a, _ := findAction(acts, u); a.Op != OpCreate {
			t.Fatalf("plan for %s: %+v", u, a)
		}
	}

	// Render and start 6 instances.
	if err := m.Set(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		body, err := httpGet(h, p)
		if err != nil || !strings.Contains(body, "version v1") {
			t.Fatalf("instance %s: %q %v", p, body, err)
		}
	}
	obs, err := m.Observe(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range tmpl.UnitNames() {
		if st := obs.Units[u]; st.ActiveState != "active" || !st.Enabled() {
			t.Fatalf("%s: %+v", u, st)
		}
		if got := h.MustSystemctl(t, "is-enabled", u); got != "enabled" {
			t.Fatalf("%s is %s", u, got)
		}
	}
	// Idempotent: nothing left to do, and a second Set changes nothing.
	assertNoChanges(t, m, cfg)
	before := states(t, conn, tmpl.UnitNames())
	if err := m.Set(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	after := states(t, conn, tmpl.UnitNames())
	for _, u := range tmpl.UnitNames() {
		if !before[u].ActiveEnter.Equal(after[u].ActiveEnter) {
			t.Errorf("%s restarted by an idempotent Set", u)
		}
	}

	t.Run("stopped by hand is reported and restored", func(t *testing.T) {
		drain(m.Events())
		u := tmpl.UnitName(ports[1])
		h.MustSystemctl(t, "stop", u)
		waitEvent(t, m, func(ev Event) bool { return ev.Unit == u && ev.ActiveState == "inactive" })
		acts, err := m.Plan(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := findAction(acts, u); a.Op != OpUpdate || !a.Drift || a.Reason != "stopped by hand" {
			t.Fatalf("plan: %+v", a)
		}
		if err := m.Set(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		if st := states(t, conn, []string{u})[u]; st.ActiveState != "active" {
			t.Fatalf("%s not restored: %+v", u, st)
		}
		assertNoChanges(t, m, cfg)
	})

	t.Run("report mode reports and leaves it", func(t *testing.T) {
		u := tmpl.UnitName(ports[2])
		h.MustSystemctl(t, "stop", u)
		rcfg := cfg
		rcfg.Drift = DriftReport
		if err := m.Set(ctx, rcfg); err != nil {
			t.Fatal(err)
		}
		if st := states(t, conn, []string{u})[u]; st.ActiveState == "active" {
			t.Fatalf("report mode restarted %s", u)
		}
		acts, err := m.Plan(ctx, rcfg)
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := findAction(acts, u); a.Op != OpNoOp || !a.Drift {
			t.Fatalf("plan in report mode: %+v", a)
		}
		if err := m.Set(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("masked by hand is reported", func(t *testing.T) {
		u := tmpl.UnitName(ports[3])
		// A manager subscribed now hears only what follows.
		fresh := newTestManager(t, h, Options{})
		h.MustSystemctl(t, "mask", u)
		// A mask changes no unit property: it is signalled as a resync.
		waitEvent(t, fresh, func(ev Event) bool { return ev.Unit == "" })
		defer func() {
			h.MustSystemctl(t, "unmask", u)
			if err := m.Set(ctx, cfg); err != nil {
				t.Error(err)
			}
		}()
		acts, err := m.Plan(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := findAction(acts, u)
		if a.Op != OpBlocked || !a.Drift || !strings.Contains(a.Reason, "masked") {
			t.Fatalf("plan: %+v", a)
		}
		// Set does not fight the mask, and does not fail on it.
		if err := m.Set(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("edited by hand is reported and restored", func(t *testing.T) {
		p := filepath.Join(dir, tmpl.FileName())
		orig, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(orig), "Restart=on-failure", "Restart=always", 1)
		if err := os.WriteFile(p, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		acts, err := m.Plan(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := findAction(acts, tmpl.FileName())
		if a.Op != OpUpdate || !a.Drift || !slices.Contains(a.Diff, "-Restart=always") || !slices.Contains(a.Diff, "+Restart=on-failure") {
			t.Fatalf("plan: %+v", a)
		}
		if err := m.Set(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		if string(got) != string(orig) {
			t.Fatalf("file not restored")
		}
		assertNoChanges(t, m, cfg)
	})

	t.Run("template change rolls one at a time in order", func(t *testing.T) {
		var mu sync.Mutex
		var order []string
		var maxDown int
		m.opts.Healthy = func(ctx context.Context, unit string, restarted time.Time) error {
			if restarted.IsZero() || restarted.After(time.Now()) {
				return fmt.Errorf("restart time %v", restarted)
			}
			mu.Lock()
			if !slices.Contains(order, unit) {
				order = append(order, unit)
			}
			mu.Unlock()
			port := strings.TrimSuffix(strings.TrimPrefix(unit, name+"@"), ".service")
			body, err := httpGet(h, port)
			if err != nil {
				return err
			}
			if !strings.Contains(body, "version v2") {
				return fmt.Errorf("serves %q", body)
			}
			return nil
		}
		defer func() { m.opts.Healthy = nil }()
		stop := make(chan struct{})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for {
				select {
				case <-stop:
					return
				default:
				}
				sts, err := conn.States(context.Background(), tmpl.UnitNames())
				if err == nil {
					down := 0
					for _, s := range sts {
						if s.ActiveState != "active" {
							down++
						}
					}
					mu.Lock()
					maxDown = max(maxDown, down)
					mu.Unlock()
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		v2 := cfg
		v2.Templates = []Template{appTemplate(name, "v2", ports...)}
		err := m.Set(ctx, v2)
		close(stop)
		<-watched
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(order, tmpl.UnitNames()) {
			t.Errorf("roll order %v, want %v", order, tmpl.UnitNames())
		}
		if maxDown > 1 {
			t.Errorf("%d instances down at once during the roll", maxDown)
		}
		for _, p := range ports {
			if body, err := httpGet(h, p); err != nil || !strings.Contains(body, "version v2") {
				t.Errorf("instance %s after roll: %q %v", p, body, err)
			}
		}
		cfg = v2
		assertNoChanges(t, m, cfg)
	})

	t.Run("broken ExecStart halts the roll at the first instance", func(t *testing.T) {
		before := states(t, conn, tmpl.UnitNames())
		broken := appTemplate(name, "v3", ports...)
		broken.Service.ExecStart = "/nonexistent/gitgw-app serve %i"
		bcfg := cfg
		bcfg.Templates = []Template{broken}
		err := m.Set(ctx, bcfg)
		if err == nil || !strings.Contains(err.Error(), "halted at "+tmpl.UnitName(ports[0])) {
			t.Fatalf("Set with a broken ExecStart: %v", err)
		}
		t.Logf("error, as reported: %v", err)
		after := states(t, conn, tmpl.UnitNames())
		for _, u := range tmpl.UnitNames()[1:] {
			if after[u].ActiveState != "active" || !after[u].ActiveEnter.Equal(before[u].ActiveEnter) {
				t.Errorf("%s touched after the roll halted: %+v", u, after[u])
			}
		}
		// A second pass must not roll further either.
		if err := m.Set(ctx, bcfg); err == nil {
			t.Fatal("second Set with a broken template: no error")
		}
		after2 := states(t, conn, tmpl.UnitNames())
		for _, u := range tmpl.UnitNames()[1:] {
			if !after2[u].ActiveEnter.Equal(before[u].ActiveEnter) {
				t.Errorf("%s restarted by a second pass on a broken template", u)
			}
		}
		// Fixing the site repairs the first instance and finishes the roll.
		if err := m.Set(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if body, err := httpGet(h, p); err != nil || !strings.Contains(body, "version v2") {
				t.Errorf("instance %s after repair: %q %v", p, body, err)
			}
		}
	})

	t.Run("instances removed from the site are stopped and disabled", func(t *testing.T) {
		small := cfg
		small.Templates = []Template{appTemplate(name, "v2", ports[:2]...)}
		if err := m.Set(ctx, small); err != nil {
			t.Fatal(err)
		}
		gone := tmpl.UnitNames()[2:]
		sts := states(t, conn, gone)
		for _, u := range gone {
			if sts[u].Running() {
				t.Errorf("%s still running: %+v", u, sts[u])
			}
			if got, _ := h.Systemctl(ctx, "is-enabled", u); strings.TrimSpace(got) != "disabled" {
				t.Errorf("%s is %q, want disabled", u, got)
			}
		}
		assertNoChanges(t, m, small)
		// Removing the template removes the file and its last instances.
		if err := m.Set(ctx, Config{UnitDir: dir}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, tmpl.FileName())); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("template file left: %v", err)
		}
		sts = states(t, conn, tmpl.UnitNames()[:2])
		for _, u := range tmpl.UnitNames()[:2] {
			if sts[u].Running() {
				t.Errorf("%s still running", u)
			}
		}
	})
}

func TestSystemdNotOwnedLeftAlone(t *testing.T) {
	h := needHarness(t)
	ctx := context.Background()
	dir := h.UnitDir
	cleanupTemplate(t, h, dir, "foreign")
	cleanupTemplate(t, h, dir, "app2")
	m := newTestManager(t, h, Options{})

	// A template someone else wrote, running one instance.
	foreign := "[Unit]\nDescription=not ours\n\n[Service]\nType=exec\nExecStart=" + serverBin + " serve %i\nEnvironment=" + serveEnv + "=1\n"
	p := filepath.Join(dir, "foreign@.service")
	if err := os.WriteFile(p, []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(p) })
	h.MustSystemctl(t, "daemon-reload")
	h.MustSystemctl(t, "start", "foreign@18190.service")

	cfg := Config{UnitDir: dir, Templates: []Template{appTemplate("foreign", "v1", "18191"), appTemplate("app2", "v1", "18192")}}
	acts, err := m.Plan(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := findAction(acts, "foreign@.service"); a.Op != OpBlocked {
		t.Fatalf("plan for a foreign file: %+v", a)
	}
	err = m.Set(ctx, cfg)
	if !errors.Is(err, ErrNotOwned) {
		t.Fatalf("Set over a foreign file: %v, want ErrNotOwned", err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != foreign {
		t.Fatal("foreign file changed")
	}
	// The rest of the config was applied all the same.
	if st := states(t, m.conn, []string{"app2@18192.service", "foreign@18190.service", "foreign@18191.service"}); st["app2@18192.service"].ActiveState != "active" ||
		st["foreign@18190.service"].ActiveState != "active" || st["foreign@18191.service"].Running() {
		t.Fatalf("states: %+v", st)
	}
	// Dropping everything from the site leaves the foreign unit running.
	if err := m.Set(ctx, Config{UnitDir: dir}); err != nil {
		t.Fatal(err)
	}
	if st := states(t, m.conn, []string{"foreign@18190.service"}); st["foreign@18190.service"].ActiveState != "active" {
		t.Fatalf("foreign instance touched: %+v", st)
	}
}

func assertNoChanges(t *testing.T, m *Manager, cfg Config) {
	t.Helper()
	acts, err := m.Plan(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		if a.Op != OpNoOp {
			t.Errorf("unexpected change after Set: %+v", a)
		}
	}
}

func drain(ch <-chan Event) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestSystemBusNeedsSubscribe runs against a harness with a real system
// bus (dbus-daemon), the production path: a unit stopped by hand must be
// seen through the subscription there too (signals need Subscribe() and a
// match on a bus; the private socket sends them regardless).
func TestSystemBusNeedsSubscribe(t *testing.T) {
	sdharness.Require(t)
	if _, err := os.Stat("/usr/bin/dbus-daemon"); err != nil {
		lab.Unavailable(t, "needs dbus-daemon: %v", err)
	}
	h := sdharness.New(t, sdharness.Options{Name: "ubus", SystemBus: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conn *DBusConn
	// PID 1 joins the bus shortly after dbus.service is up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := DialBus(ctx, h.SystemBusSocket())
		if err == nil {
			if _, err = c.Brief(ctx, []string{"multi-user.target"}); err == nil {
				conn = c
				break
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd not reachable over the system bus: %v\n%s", err, h.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer conn.Close()
	m, err := New(ctx, conn, Options{Settle: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfg := Config{UnitDir: h.UnitDir, Templates: []Template{{
		Name:      "busapp",
		Service:   ServiceSection{Type: "exec", ExecStart: "/bin/sleep infinity"},
		Install:   InstallSection{WantedBy: []string{"multi-user.target"}},
		Instances: []string{"1", "2"},
	}}}
	if err := m.Set(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	h.MustSystemctl(t, "stop", "busapp@2.service")
	waitEvent(t, m, func(ev Event) bool { return ev.Unit == "busapp@2.service" && ev.ActiveState == "inactive" })
	if err := m.Set(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if got := h.MustSystemctl(t, "is-active", "busapp@2.service"); got != "active" {
		t.Fatalf("not restored: %s", got)
	}
}

// waitEvent waits for an event that matches, skipping others (resyncs
// caused by the test's own Set calls).
func waitEvent(t *testing.T, m *Manager, match func(Event) bool) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-m.Events():
			if match(ev) {
				return
			}
		case <-timeout:
			t.Fatal("no matching event within 30 s")
		}
	}
}
