package l4proxy

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// levelRecorder keeps each record's message and level.
type levelRecorder struct {
	mu   sync.Mutex
	recs map[string]slog.Level
}

func (r *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *levelRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs[rec.Message] = rec.Level
	r.mu.Unlock()
	return nil
}
func (r *levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *levelRecorder) WithGroup(string) slog.Handler      { return r }

func (r *levelRecorder) level(msg string) (slog.Level, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.recs[msg]
	return l, ok
}

// TestServerUpDownLevels: a server going DOWN needs a look (WARN); one
// coming UP is the service getting better (INFO), not a warning.
func TestServerUpDownLevels(t *testing.T) {
	t.Parallel()
	a := newBackend(t, "a")
	check := freePort(t) // nothing listens there yet
	rec := &levelRecorder{recs: map[string]slog.Level{}}
	p := newTestPoolLog(t, slog.New(rec), Options{}, Config{Services: []Service{{
		Name: "web", Binds: []netip.AddrPort{freePort(t)}, Servers: []Server{srvCfg(a, 1)},
		Check: &Check{Type: CheckTCP, Interval: 20 * time.Millisecond, Timeout: 2 * time.Second, Rise: 1, Fall: 1,
			Address: check.Addr(), Port: check.Port()},
	}}})
	eventually(t, 10*time.Second, "server down", func() bool { return serverStats(p, "web", "a").Status == StatusDown })
	ln, err := net.Listen("tcp4", check.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	eventually(t, 10*time.Second, "server up", func() bool { return serverStats(p, "web", "a").Status == StatusUp })
	for msg, want := range map[string]slog.Level{"server DOWN": slog.LevelWarn, "server UP": slog.LevelInfo} {
		if got, ok := rec.level(msg); !ok || got != want {
			t.Errorf("%q logged at %v (logged: %v), want %v", msg, got, ok, want)
		}
	}
}
