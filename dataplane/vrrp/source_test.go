package vrrp

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			out[i] = p
			continue
		}
		a := netip.MustParseAddr(s)
		out[i] = netip.PrefixFrom(a, a.BitLen())
	}
	return out
}

// TestSourceAllowed is the allow-list decision on its own: pure, the first
// thing the receive path asks.
func TestSourceAllowed(t *testing.T) {
	site := prefixes("203.0.113.11", "203.0.113.12")
	for _, c := range []struct {
		name  string
		allow []netip.Prefix
		peers []netip.Addr
		src   string
		want  bool
	}{
		{"no list: anyone (RFC)", nil, nil, "203.0.113.66", true},
		{"site node", site, nil, "203.0.113.12", true},
		{"foreign LAN host", site, nil, "203.0.113.66", false},
		{"other subnet", site, nil, "198.51.100.12", false},
		{"listed prefix", append(prefixes("198.51.100.0/24"), site...), nil, "198.51.100.77", true},
		{"v4-mapped sender", site, nil, "::ffff:203.0.113.12", true},
		{"unicast peer only", nil, mustAddrs("203.0.113.12"), "203.0.113.12", true},
		{"unicast stranger", nil, mustAddrs("203.0.113.12"), "203.0.113.66", false},
		{"unicast plus allowed keepalived", prefixes("203.0.113.20"), mustAddrs("203.0.113.12"), "203.0.113.20", true},
		{"v6 link-local", prefixes("fe80::1", "fe80::2"), nil, "fe80::2", true},
		{"v6 link-local with zone", prefixes("fe80::1", "fe80::2"), nil, "fe80::2%eth0", true},
		{"v6 stranger", prefixes("fe80::1", "fe80::2"), nil, "fe80::66", false},
		{"wrong family", site, nil, "2001:db8::11", false},
	} {
		in := Instance{AllowSources: c.allow, UnicastPeers: c.peers}
		if got := in.SourceAllowed(netip.MustParseAddr(c.src)); got != c.want {
			t.Errorf("%s: SourceAllowed(%s) = %v, want %v", c.name, c.src, got, c.want)
		}
	}
}

func TestValidateAllowSources(t *testing.T) {
	for _, c := range []struct {
		allow []netip.Prefix
		want  string
	}{
		{prefixes("203.0.113.0/24", "198.51.100.7"), ""},
		{prefixes("2001:db8::1"), "wrong family"},
		{[]netip.Prefix{{}}, "invalid"},
	} {
		err := Config{Instances: []Instance{fast("A", 1, 100, "203.0.113.100/24", func(in *Instance) { in.AllowSources = c.allow })}}.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: %v, want %q", c.allow, err, c.want)
		}
	}
}

// speaker sends adverts from src on the bus every interval until stopped,
// as a host on the LAN would.
func speaker(t *testing.T, b *bus, src string, p Packet) (stop func()) {
	t.Helper()
	addr := netip.MustParseAddr(src)
	c := b.listen(addr)
	msg, err := p.Marshal(addr, GroupV4, ChecksumPseudo)
	if err != nil {
		t.Fatal(err)
	}
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(p.Interval)
		defer tk.Stop()
		for {
			_ = c.Write(msg, addr, GroupV4)
			select {
			case <-quit:
				return
			case <-tk.C:
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done; _ = c.Close() }) }
	t.Cleanup(stop)
	return stop
}

// TestEngineSourceAllowList: a host outside the allow-list advertising
// priority 200 is dropped (counted as "source") and the master keeps its
// role; once the site lists it, the same adverts win.
func TestEngineSourceAllowList(t *testing.T) {
	b := &bus{}
	n := newNode(t, b, "203.0.113.11")
	ctx := context.Background()
	if err := n.e.Set(ctx, Config{Instances: []Instance{fast("A", 51, 150, "203.0.113.100/24", allowLab())}}); err != nil {
		t.Fatal(err)
	}
	n.wait(t, "A", StateMaster)
	before := n.state(t, "A").Counters.Transitions
	speaker(t, b, "203.0.113.66", Packet{Version: 3, VRID: 51, Priority: 200, Interval: 100 * time.Millisecond, Addrs: mustAddrs("203.0.113.100")})
	// Twenty adverts are over six master-down intervals of a priority-150
	// backup: had one been heard, the master would have yielded at once.
	waitFor(t, 20*time.Second, "20 foreign adverts dropped", func() bool {
		st := n.state(t, "A")
		if st.State != StateMaster || st.Counters.Transitions != before {
			t.Fatalf("the foreign advert moved the master: %+v", st)
		}
		return st.Counters.Drops[DropSource] >= 20
	})
	if st := n.state(t, "A"); st.Counters.AdvertsIn != 0 || st.MasterAddr != netip.MustParseAddr("203.0.113.11") {
		t.Errorf("foreign adverts heard: %+v", st)
	}
	// The site lists the sender (keepalived during a migration): hot Set,
	// and its priority 200 wins.
	if err := n.e.Set(ctx, Config{Instances: []Instance{fast("A", 51, 150, "203.0.113.100/24", allowLab("203.0.113.66"))}}); err != nil {
		t.Fatal(err)
	}
	n.wait(t, "A", StateBackup)
	if st := n.state(t, "A"); st.MasterAddr != netip.MustParseAddr("203.0.113.66") || st.MasterPriority != 200 {
		t.Errorf("after listing the sender: master %v priority %d", st.MasterAddr, st.MasterPriority)
	}
}

// allowLab lists the lab's two gateways (and extra senders) as the only
// sources VI_1 hears, as the site's translation does.
func allowLab(extra ...string) func(*Instance) {
	return func(in *Instance) {
		in.AllowSources = prefixes(append([]string{"203.0.113.11", "203.0.113.12"}, extra...)...)
	}
}

// TestLabForeignSource runs the allow-list on the real kernel: the lab's
// client (203.0.113.50, in no site) sends priority-200 VRRPv3 adverts for
// VI_1 from a raw socket in its namespace. The master keeps its role and
// the VIP, both gateways count the drops; once the gateways list the
// sender, the same adverts take mastership as a listed peer's would.
func TestLabForeignSource(t *testing.T) {
	t.Parallel()
	l := newVRRPLab(t)
	g1 := startDaemon(t, l.gw1, "gw1", vi1(150, allowLab()))
	g2 := startDaemon(t, l.gw2, "gw2", vi1(100, allowLab()))
	g1.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)

	var c *RawConn
	if err := l.client.Do(func() (err error) { c, err = Listen("eth0", false); return err }); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddr("203.0.113.50")
	msg, err := (&Packet{Version: 3, VRID: 51, Priority: 200, Interval: 100 * time.Millisecond, Addrs: mustAddrs(labVIP)}).Marshal(src, GroupV4, ChecksumPseudo)
	if err != nil {
		t.Fatal(err)
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			if err := c.Write(msg, src, GroupV4); err != nil {
				t.Errorf("foreign advert: %v", err)
				return
			}
			select {
			case <-quit:
				return
			case <-tk.C:
			}
		}
	}()
	t.Cleanup(func() { close(quit); <-done; _ = c.Close() })

	// Neither gateway may ever follow the foreign host. (A loaded box may
	// still swap gw1 and gw2 for a moment; that is not the question here.)
	waitFor(t, settle, "30 foreign adverts dropped by both gateways", func() bool {
		a, b := g1.instance("VI_1"), g2.instance("VI_1")
		for _, tr := range append(g1.transitions(), g2.transitions()...) {
			if strings.Contains(tr.Reason, src.String()) {
				t.Fatalf("the foreign host moved mastership: %+v", tr)
			}
		}
		if a.MasterAddr == src || b.MasterAddr == src {
			t.Fatalf("a gateway follows the foreign host: gw1 %v, gw2 %v", a.MasterAddr, b.MasterAddr)
		}
		return a.Counters.Drops[DropSource] >= 30 && b.Counters.Drops[DropSource] >= 30
	})
	g1.waitState("VI_1", StateMaster, settle)
	g2.waitState("VI_1", StateBackup, settle)
	waitFor(t, settle, "the VIP on gw1 only", func() bool { return hasAddr(t, l.gw1, labVIPp) && !hasAddr(t, l.gw2, labVIPp) })

	// Listed, the same sender is a peer like any other: its priority 200
	// wins on both gateways.
	g1.set(vi1(150, allowLab("203.0.113.50")))
	g2.set(vi1(100, allowLab("203.0.113.50")))
	g1.waitState("VI_1", StateBackup, settle)
	waitFor(t, settle, "both gateways following 203.0.113.50", func() bool {
		return g1.instance("VI_1").MasterAddr == src && g2.instance("VI_1").MasterAddr == src
	})
	waitFor(t, settle, "VIP off gw1", func() bool { return !hasAddr(t, l.gw1, labVIPp) })
}

// feedConn returns n copies of one packet, then reports itself closed.
type feedConn struct {
	r Received
	n int
}

func (c *feedConn) Read(buf []byte) (Received, error) {
	if c.n == 0 {
		return Received{}, net.ErrClosed
	}
	c.n--
	r := c.r
	r.Payload = buf[:copy(buf, c.r.Payload)]
	return r, nil
}
func (c *feedConn) Write([]byte, netip.Addr, netip.Addr) error { return nil }
func (c *feedConn) Close() error                               { return nil }

// TestLinkQueuesBoundedCopies: a queued packet holds at most the longest
// VRRP message, however large the datagram a LAN host sent; the advert at
// its start is intact.
func TestLinkQueuesBoundedCopies(t *testing.T) {
	src := netip.MustParseAddr("203.0.113.66")
	msg, err := (&Packet{Version: 3, VRID: 51, Priority: 200, Interval: time.Second, Addrs: mustAddrs(labVIP)}).Marshal(src, GroupV4, ChecksumPseudo)
	if err != nil {
		t.Fatal(err)
	}
	big := append(msg, make([]byte, 60<<10)...)
	conn := &feedConn{r: Received{Payload: big, Src: src, Dst: GroupV4, TTL: 255}, n: 8}
	l := newLink(New(nil, Options{}), linkKey{"eth0", false}, conn)
	in := &instance{cfg: Instance{VRID: 51}, in: make(chan Received, 64)}
	l.attach(in)
	l.readLoop() // returns when the feed ends
	if len(in.in) != 8 {
		t.Fatalf("%d packets queued, want 8", len(in.in))
	}
	for range 8 {
		r := <-in.in
		if cap(r.Payload) > maxMessage {
			t.Fatalf("a queued packet holds %d bytes, more than the longest message (%d)", cap(r.Payload), maxMessage)
		}
		if p, _, err := Decode(r.Payload, r.Src, r.Dst); err != nil || p.Priority != 200 {
			t.Fatalf("clipped advert: %v %+v", err, p)
		}
	}
}
