package kernlb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/ctsync"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	vipdp "github.com/gitgw/gitgw/dataplane/vip"
)

// flowStats is what one long-lived connection saw across a failover; its
// goroutine writes it while failoverAfter waits on it, under mu.
type flowStats struct {
	mu     sync.Mutex
	server string
	err    error
	maxGap time.Duration
	lastOK time.Time
	// lastAsked is when the last exchange that was answered began.
	lastAsked time.Time
	changedTo string
}

// settledSince says whether the flow has had an exchange begun after t
// answered, or has failed.
func (st *flowStats) settledSince(t time.Time) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err != nil || st.lastAsked.After(t)
}

// flowDeadline is how long a flow may go unanswered before it counts as
// stalled: a flow whose state the second gateway lacks never answers
// again, while one that survives answers after a few retransmissions.
// Generous, because the failover's own steps take as long as a loaded box
// makes them: how long the switch takes is not what these tests judge, but
// whether each flow survives it.
const flowDeadline = 10 * time.Second

// TestDRFailover: two gateways with the same DR service; 50 long-lived TCP
// connections exchange a line every 20 ms through the first; the first
// gateway dies (its switch port goes down) and the VIP moves to the second
// (address + gratuitous ARP from dataplane/vip, VRRP's part). Every
// connection must go on, on the same server, without a reset or a stall
// (no answer within flowDeadline): the second gateway computes the same Maglev table from the same
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
			udp := l.service(UDP, Maglev)
			udp.Name = "web-udp"
			set(t, l.lb(0), Config{Services: []Service{svc, udp}})
			other, otherUDP := svc, udp
			other.TableSize, otherUDP.TableSize = tc.otherSize, tc.otherSize
			set(t, l.lb(1), Config{Services: []Service{other, otherUDP}})

			stream := l.udpStream(t)
			lost, stalled, total := l.failover(t, 50)
			us := stream.stopOnceAnswered(l.switchedAt)
			t.Logf("%s: %d of %d connections reset, %d stalled; udp stream: %s", tc.name, lost, total, stalled, us)
			if !tc.wantLost {
				us.check(t, l.switchedAt)
			}
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
	return l.failoverAfter(t, n, func() {})
}

// failoverAfter is failover with ready called once the connections run,
// before the failover.
func (l *kernLab) failoverAfter(t *testing.T, n int, ready func()) (lost, stalled, total int) {
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
					st.mu.Lock()
					st.maxGap = max(st.maxGap, time.Since(st.lastOK))
					st.mu.Unlock()
					return
				case <-tick.C:
				}
				asked := time.Now()
				ans, err := askWithin(c, flowDeadline)
				now := time.Now()
				st.mu.Lock()
				if err != nil {
					// A read deadline is a stall; a reset is a loss.
					st.err = err
					st.mu.Unlock()
					return
				}
				st.maxGap = max(st.maxGap, now.Sub(st.lastOK))
				st.lastOK, st.lastAsked = now, asked
				if srv := strings.Fields(ans)[0]; srv != st.server {
					st.changedTo = srv
				}
				st.mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // traffic through gateway 1 (pacing, not a wait for a condition)
	ready()
	// Gateway 1 dies: off both segments. Gateway 2 takes the addresses
	// and announces them, in process through netlink as the VRRP engine
	// does. With an `ip` exec per step, a loaded CI box took long enough
	// between the steps for a flow to lose two retransmissions (a stall
	// over 1 s): that measured the test's process starts, not the failover.
	l.portDown(l.sw, l.gwPort[0])
	if l.mode == NAT {
		l.portDown(l.back, l.backPort[0])
	}
	l.holdVIPNow(1)
	a := vipdp.NewAnnouncer()
	defer a.Close()
	if err := l.gw[1].Do(func() error {
		err := a.Announce("eth0", []netip.Addr{netip.MustParseAddr(vip)})
		if l.mode == NAT {
			err = errors.Join(err, a.Announce("eth1", []netip.Addr{netip.MustParseAddr(backVIP)}))
		}
		return err
	}); err != nil {
		t.Fatalf("gratuitous ARP: %v", err)
	}
	// Gateway 1 is off both segments and gateway 2 holds the VIP: an
	// exchange begun from now on goes through gateway 2. Each flow goes on
	// or fails: wait for one such exchange, or the failure, of every one,
	// rather than for a fixed time.
	switchAt := time.Now()
	l.switchedAt = switchAt
	bound := time.Now().Add(flowDeadline + 2*time.Second)
	for !allSettled(stats, switchAt) && time.Now().Before(bound) {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for i, st := range stats {
		total++
		switch {
		case st.err != nil && !errors.Is(st.err, os.ErrDeadlineExceeded):
			lost++
			t.Logf("connection %d (%s): %v", i, st.server, st.err)
		case st.err != nil || !st.lastAsked.After(switchAt):
			stalled++
			t.Logf("connection %d (%s): no answer after the failover (%v)", i, st.server, st.err)
		case st.changedTo != "":
			lost++
			t.Logf("connection %d moved from %s to %s", i, st.server, st.changedTo)
		}
	}
	return lost, stalled, total
}

// TestNATFailoverSync: NAT keeps its flows in conntrack, so a failover
// loses them unless the peer has the entries: with ctsync replicating the
// service's entries from gateway 1 to gateway 2, 50 long-lived connections
// go on on the same servers. Gateway 2 does not pick up mid-stream TCP
// (nf_conntrack_tcp_loose=0 in its namespace), so what carries the flows
// is the replicated entries and nothing else; the control run, without
// sync, loses them all. (With pickup on, the default, gateway 2 would
// schedule each flow again: rr sends a random share elsewhere, 4 to 48 of
// 50 in trials; even Maglev, which sends a flow back to its server,
// loses a random share: see the cases.)
func TestNATFailoverSync(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sync     bool
		late     bool // the sender starts once the connections run (its initial dump carries them)
		sched    Scheduler
		pickup   bool // nf_conntrack_tcp_loose on gateway 2
		wantLost bool
	}{
		{"sync", true, false, RoundRobin, false, false},
		{"sync-started-late", true, true, RoundRobin, false, false},
		{"no-sync", false, false, RoundRobin, false, true},
		// Not a case: without sync, with mid-stream pickup and Maglev,
		// 0 to 49 of 50 flows were lost over six trials. Pickup happens
		// from whichever direction gateway 2 sees first; from the
		// server's side the entry has no DNAT and the flow breaks.
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newKernLab(t, NAT)
			l.holdVIP(0)
			l.serve()
			svc := l.service(TCP, tc.sched)
			udp := l.service(UDP, tc.sched)
			udp.Name = "web-udp"
			for i := range l.gw {
				set(t, l.lb(i), Config{Services: []Service{svc, udp}})
			}
			if !tc.pickup {
				l.gw[1].Run(t, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0")
			}
			if tc.sync && !tc.late {
				l.startSync(t, svc, udp)
			}
			const n = 50
			stream := l.udpStream(t)
			lost, stalled, total := l.failoverAfter(t, n, func() {
				if tc.late {
					l.startSync(t, svc, udp)
				}
				if tc.sync {
					l.waitSynced(t, n)
				}
			})
			us := stream.stopOnceAnswered(l.switchedAt)
			t.Logf("%s: %d of %d connections reset or moved, %d stalled; udp stream: %s", tc.name, lost, total, stalled, us)
			if tc.wantLost {
				if lost+stalled < n/2 {
					t.Errorf("without sync only %d connections were lost: the failover does not go through gateway 2", lost+stalled)
				}
				return
			}
			us.check(t, l.switchedAt)
			if lost+stalled != 0 {
				t.Errorf("failover lost %d and stalled %d of %d connections, want 0", lost, stalled, total)
			}
		})
	}
}

// allSettled says whether every flow has answered after t or failed.
func allSettled(stats []*flowStats, t time.Time) bool {
	for _, st := range stats {
		if !st.settledSince(t) {
			return false
		}
	}
	return true
}

// startSync runs a ctsync sender on gateway 1 and a receiver on gateway 2,
// over the front segment, until the test ends.
func (l *kernLab) startSync(t *testing.T, svcs ...Service) {
	var out, in net.PacketConn
	if err := l.gw[0].Do(func() (err error) { out, err = net.ListenPacket("udp4", "203.0.113.11:0"); return }); err != nil {
		t.Fatal(err)
	}
	if err := l.gw[1].Do(func() (err error) { in, err = net.ListenPacket("udp4", "203.0.113.12:3780"); return }); err != nil {
		t.Fatal(err)
	}
	fds := [2]*os.File{}
	for i := range fds {
		f, err := os.Open(l.gw[i].Path())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fds[i] = f
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	peer := &net.UDPAddr{IP: net.ParseIP("203.0.113.12"), Port: 3780}
	var cs []ctsync.Service
	for _, s := range svcs {
		cs = append(cs, ctsync.Service{VIP: netip.AddrPortFrom(s.VIP, s.Port), Protocol: protoNum(s.Protocol)})
	}
	snd, err := ctsync.NewSender(int(fds[0].Fd()), out, peer, cs, logger)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := ctsync.NewReceiver(int(fds[1].Fd()), in, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = snd.Run(ctx) }()
	go func() { defer wg.Done(); _ = rcv.Run(ctx) }()
	t.Cleanup(func() { cancel(); out.Close(); wg.Wait() })
}

// waitSynced polls gateway 2's conntrack table until it holds n
// established flows to the VIP.
func (l *kernLab) waitSynced(t *testing.T, n int) {
	f, err := os.Open(l.gw[1].Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ct, err := conntrack.Dial(&mdnetlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		flows, err := ct.Dump(nil)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, fl := range flows {
			if fl.TupleOrig.IP.DestinationAddress == netip.MustParseAddr(vip) && fl.ProtoInfo.TCP != nil && fl.ProtoInfo.TCP.State == 3 /* established */ {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway 2 has %d of %d established flows after 5 s of sync", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// udpStats is what a UDP stream through the VIP saw.
type udpStats struct {
	sent, answered int
	servers        map[string]int
	maxGap         time.Duration
	lastOK         time.Time
	lastSent       time.Time // when the last answered datagram was sent
	stoppedAt      time.Time
}

func (u udpStats) String() string {
	return fmt.Sprintf("%d of %d datagrams answered, servers %v, longest gap %v", u.answered, u.sent, u.servers, u.maxGap.Round(time.Millisecond))
}

// check fails the test unless the stream stayed on one server and a
// datagram sent after the failover at switched was answered.
func (u udpStats) check(t *testing.T, switched time.Time) {
	t.Helper()
	if len(u.servers) != 1 || !u.lastSent.After(switched) {
		t.Errorf("udp stream across the failover: %s, want one server, answering again after the failover", u)
	}
}

type udpStream struct {
	done     chan udpStats
	quit     chan struct{}
	lastSent atomic.Int64 // unix nanoseconds: when the last answered datagram was sent
}

// stopOnceAnswered stops the stream once a datagram sent after t has been
// answered, or flowDeadline after t at the latest.
func (s *udpStream) stopOnceAnswered(t time.Time) udpStats {
	for s.lastSent.Load() <= t.UnixNano() && time.Since(t) < flowDeadline {
		time.Sleep(20 * time.Millisecond)
	}
	close(s.quit)
	return <-s.done
}

// udpStream sends a datagram to VIP:80/udp every 20 ms from one socket (one
// flow) and records the answers, until stop.
func (l *kernLab) udpStream(t *testing.T) *udpStream {
	var c net.Conn
	if err := l.client.Do(func() (err error) { c, err = net.Dial("udp4", vip+":80"); return }); err != nil {
		t.Fatal(err)
	}
	s := &udpStream{done: make(chan udpStats, 1), quit: make(chan struct{})}
	go func() {
		defer c.Close()
		st := udpStats{servers: map[string]int{}, lastOK: time.Now()}
		buf := make([]byte, 200)
		for {
			select {
			case <-s.quit:
				st.stoppedAt = time.Now()
				st.maxGap = max(st.maxGap, st.stoppedAt.Sub(st.lastOK))
				s.done <- st
				return
			default:
			}
			st.sent++
			sent := time.Now()
			_, _ = c.Write([]byte("ping"))
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			n, err := c.Read(buf)
			if err != nil {
				continue // lost or late: the next datagram paces the stream
			}
			now := time.Now()
			st.answered++
			st.maxGap = max(st.maxGap, now.Sub(st.lastOK))
			st.lastOK, st.lastSent = now, sent
			s.lastSent.Store(sent.UnixNano())
			st.servers[strings.Fields(string(buf[:n]))[0]]++
			time.Sleep(20 * time.Millisecond) // pacing
		}
	}()
	return s
}
