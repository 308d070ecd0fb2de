package l4proxy

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/goldenfile"
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, "testdata/"+name+".golden", got)
}

func goldenSnapshot() Snapshot {
	at := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
	return Snapshot{Time: at, Services: []ServiceStats{{
		Name: "web", Binds: []string{"203.0.113.100:80", "[2001:db8::100]:80"}, Balance: RoundRobin, Status: "UP",
		Current: 3, MaxConn: 1000, Total: 12345, BytesIn: 1 << 20, BytesOut: 5 << 30, Queue: 3, MaxQueue: 6, ServiceQueue: 1, MaxServiceQueue: 2, QueueTimeouts: 4, Errors: 1,
		Denied: DeniedStats{DenyList: 9, NotAllowed: 4, ConnLimit: 2, RateLimit: 1}, SourceEntries: 3,
		Servers: []ServerStats{
			{Name: "app1", Addr: "198.51.100.11:8080", Weight: 100, Admin: Ready, Status: "UP", Current: 2, Total: 6000,
				Queue: 2, MaxQueue: 5, QueueTimeouts: 1, BytesIn: 600 << 10, BytesOut: 3 << 30, Check: "L7 status 200, body matches", CheckDuration: 2 * time.Millisecond,
				LastChange: at.Add(-time.Hour)},
			{Name: "app2", Addr: "198.51.100.12:8080", Weight: 50, Admin: Drain, Status: "DRAIN", Current: 1, Total: 6000,
				LastChange: at.Add(-90 * time.Second)},
			{Name: "app3", Addr: "198.51.100.13:8080", Weight: 100, Admin: Ready, Status: "DOWN", Total: 345, ConnectErrors: 7,
				Retries: 7, FailedChecks: 12, Check: "L4 connect: connection refused", LastChange: at.Add(-5 * time.Minute),
				Downtime: 5 * time.Minute},
			{Name: "spare", Addr: "198.51.100.14:8080", Weight: 1, Backup: true, Admin: Maint, Status: "MAINT", LastChange: at},
		},
	}}}
}

// TestStatsGolden pins the snapshot's JSON.
func TestStatsGolden(t *testing.T) {
	js, err := json.MarshalIndent(goldenSnapshot(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "stats.json", append(js, '\n'))
}

func TestStatsLive(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	bind := freePort(t)
	p := newTestPool(t, Options{}, Config{Services: []Service{{Name: "web", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1)}}}})
	if _, err := roundTrip(bind, "hello"); err != nil {
		t.Fatal(err)
	}
	snap := p.Stats()
	// No check configured: the server takes traffic, but is NOCHECK, not UP.
	if len(snap.Services) != 1 || snap.Services[0].Total != 1 || snap.Services[0].Servers[0].Status != StatusNoCheck || !snap.Services[0].Unchecked ||
		snap.Services[0].Binds[0] != bind.String() {
		t.Errorf("snapshot: %+v", snap)
	}
}

// logRecorder keeps the attributes of every record.
type logRecorder struct {
	mu   sync.Mutex
	recs []map[string]string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]string{"msg": rec.Message}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	r.mu.Lock()
	r.recs = append(r.recs, m)
	r.mu.Unlock()
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) conns() []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]string
	for _, m := range r.recs {
		if m["msg"] == "connection" {
			out = append(out, m)
		}
	}
	return out
}

func TestConnectionLog(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	bind := freePort(t)
	_, rec := newLoggedPool(t, Config{Services: []Service{{
		Name: "web", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1)}, Log: true,
		// Long enough that a stalled client on a loaded CI box does not
		// turn the first, normal connection into a timeout.
		Timeouts: Timeouts{Client: 2 * time.Second},
	}}})
	if _, err := roundTrip(bind, "0123456789"); err != nil {
		t.Fatal(err)
	}
	_, c, err := dialName(bind) // then stays silent: client timeout
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, 20*time.Second, "two connection log lines", func() bool { return len(rec.conns()) == 2 })
	got := rec.conns()
	if l := got[0]; l["service"] != "web" || l["server"] != "a" || l["bytes_in"] != "10" || l["bytes_out"] != "12" || l["termination"] != "--" || l["duration"] == "" {
		t.Errorf("normal connection log: %v", l)
	}
	if l := got[1]; l["termination"] != "cD" {
		t.Errorf("timed-out connection log: %v", l)
	}
}

// TestStatsLastCheck: a checked server's stats say when its last check
// began and how it ended, so that a caller can wait for a check begun
// after an event (a restart) instead of reading a status older than it.
func TestStatsLastCheck(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	bind := freePort(t)
	ck := &Check{Type: CheckTCP, Interval: 20 * time.Millisecond, Timeout: 500 * time.Millisecond, Rise: 1, Fall: 1}
	p := newTestPool(t, Options{}, Config{Services: []Service{{Name: "web", Binds: []netip.AddrPort{bind}, Servers: []Server{srvCfg(a, 1)}, Check: ck}}})
	waitCheck := func(what string, after time.Time, ok bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st := p.Stats().Services[0].Servers[0]
			if !st.Checked {
				t.Fatalf("server of a checked service not marked Checked: %+v", st)
			}
			if !st.LastCheck.Before(after) && st.LastCheckOK == ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no check begun after %v with ok=%v; last %+v", what, after, ok, st)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitCheck("backend up", time.Now(), true)
	a.kill()
	waitCheck("backend gone", time.Now(), false)

	// Without checks: not Checked, no check time.
	p2 := newTestPool(t, Options{}, Config{Services: []Service{{Name: "web", Binds: []netip.AddrPort{freePort(t)}, Servers: []Server{srvCfg(newBackend(t, "b"), 1)}}}})
	if st := p2.Stats().Services[0].Servers[0]; st.Checked || !st.LastCheck.IsZero() {
		t.Errorf("unchecked server: %+v", st)
	}
}
