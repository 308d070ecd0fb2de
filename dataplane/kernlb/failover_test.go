package kernlb

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	vipdp "github.com/gitgw/gitgw/dataplane/vip"
)

// flowStats is what one long-lived connection saw across a failover.
type flowStats struct {
	server    string
	err       error
	maxGap    time.Duration
	lastOK    time.Time
	changedTo string
}

// TestDRFailover: two gateways with the same DR service; 50 long-lived TCP
// connections exchange a line every 20 ms through the first; the first
// gateway dies (its switch port goes down) and the VIP moves to the second
// (address + gratuitous ARP from dataplane/vip, VRRP's part). Every
// connection must go on, on the same server, without a reset or a stall
// over 1 s: the second gateway computes the same Maglev table from the same
// service. The control run gives the second gateway another table size
// (hence another table): connections break, as with different seeds.
func TestDRFailover(t *testing.T) {
	for _, tc := range []struct {
		name      string
		otherSize int
		wantLost  bool
	}{{"same-table", 0, false}, {"different-table", 1031, true}} {
		t.Run(tc.name, func(t *testing.T) {
			l := newKernLab(t, DR)
			l.holdVIP(0)
			l.serve()
			svc := l.service(TCP, Maglev)
			set(t, l.lb(0), Config{Services: []Service{svc}})
			other := svc
			other.TableSize = tc.otherSize
			set(t, l.lb(1), Config{Services: []Service{other}})

			lost, stalled, total := l.failover(t, 50)
			t.Logf("%s: %d of %d connections reset, %d stalled > 1 s", tc.name, lost, total, stalled)
			if tc.wantLost {
				if lost+stalled < 5 {
					t.Errorf("a gateway with another table lost only %d connections: the failover does not go through it", lost+stalled)
				}
				return
			}
			if lost+stalled != 0 {
				t.Errorf("failover lost %d and stalled %d of %d connections, want 0", lost, stalled, total)
			}
		})
	}
}

// failover runs n connections, kills gateway 1 and moves the VIP to
// gateway 2 after 500 ms, and counts the connections that broke or stalled.
func (l *kernLab) failover(t *testing.T, n int) (lost, stalled, total int) {
	stats := make([]*flowStats, n)
	var conns []net.Conn
	for i := range n {
		c, err := l.dial("")
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer c.Close()
		ans, err := ask(c)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		stats[i] = &flowStats{server: strings.Fields(ans)[0], lastOK: time.Now()}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := stats[i]
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					st.maxGap = max(st.maxGap, time.Since(st.lastOK))
					return
				case <-tick.C:
				}
				ans, err := ask(c)
				if err != nil {
					// A read deadline (2 s) is a stall; a reset is a loss.
					st.err = err
					return
				}
				now := time.Now()
				st.maxGap = max(st.maxGap, now.Sub(st.lastOK))
				st.lastOK = now
				if srv := strings.Fields(ans)[0]; srv != st.server {
					st.changedTo = srv
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // traffic through gateway 1 (pacing, not a wait for a condition)
	switchAt := time.Now()
	l.sw.SetPort(t, l.gwPort[0], false)
	l.holdVIP(1)
	a := vipdp.NewAnnouncer()
	defer a.Close()
	if err := l.gw[1].Do(func() error {
		return a.Announce("eth0", []netip.Addr{netip.MustParseAddr(vip)})
	}); err != nil {
		t.Fatalf("gratuitous ARP: %v", err)
	}
	time.Sleep(1500 * time.Millisecond) // traffic through gateway 2
	close(stop)
	wg.Wait()
	for i, st := range stats {
		total++
		switch {
		case st.err != nil && !strings.Contains(st.err.Error(), "timeout"):
			lost++
			t.Logf("connection %d (%s): %v", i, st.server, st.err)
		case st.err != nil || st.maxGap > time.Second:
			stalled++
		case st.changedTo != "":
			lost++
			t.Logf("connection %d moved from %s to %s", i, st.server, st.changedTo)
		case !st.lastOK.After(switchAt.Add(time.Second)):
			t.Errorf("connection %d had no exchange a second after the failover: %s", i, fmt.Sprint(st.lastOK))
		}
	}
	return lost, stalled, total
}
