package kernlb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// LB drives the agent's nftables tables through its seams to the kernel,
// all opened in one network namespace: an nftables connection (its batches
// are the kernel's transactions), a netlink handle (links and the
// neighbour table, for DR) and an nfnetlink socket that reads the ruleset's
// generation. It is not safe for concurrent use.
type LB struct {
	conn  *nftables.Conn
	nl    *netlink.Handle
	genNL *mdnetlink.Conn
	// txNL sends Set's transactions (txn.commit); reopened after a
	// refused one, whose error messages may still be queued on it.
	txNL    *mdnetlink.Conn
	netnsFd int
	tx      *txn // the transaction being built by Set
	log     *slog.Logger
	cached  struct {
		ok  bool
		gen uint32
		obs Observed
	}
	// timing of the last Set's phases, for the benchmark and the log.
	timing setTiming
	// memo is the last configuration rendered: an agent's pass plans
	// (Diff) and then applies (Set) the same configuration, and most
	// passes change nothing; rendering 100 Maglev services costs tens of
	// milliseconds.
	memo struct {
		key  string
		p    *program
		want Observed
	}
	// svcMemo is the last render of each service (renderWith): a change
	// of a few services renders only those.
	svcMemo renderMemo
}

// render is render(cfg) and its comparable form, memoized for the last
// configuration.
func (lb *LB) render(cfg Config) (*program, Observed, error) {
	key := fmt.Sprintf("%v", cfg.Services)
	if lb.memo.p != nil && lb.memo.key == key {
		return lb.memo.p, lb.memo.want, nil
	}
	if lb.svcMemo == nil {
		lb.svcMemo = renderMemo{}
	}
	p, err := renderWith(cfg, lb.svcMemo)
	if err != nil {
		return nil, Observed{}, err
	}
	want := observedOf(p)
	lb.memo.key, lb.memo.p, lb.memo.want = key, p, want
	return p, want, nil
}

// Diff is the package's Diff with the rendering memoized (see Set): what
// Set(desired) would change in tables observed.
func (lb *LB) Diff(desired Config, observed Observed) ([]ChangeItem, error) {
	_, want, err := lb.render(desired)
	if err != nil {
		return nil, err
	}
	return diffProgram(want, desired, observed), nil
}

// setTiming is the last Set's phases: observe, render, diff, batch
// (building the transaction), flush (sending it; the kernel applies it
// within sendmsg), flushSys the thread's system time during flush (the
// kernel's work on the transaction), elems the set elements it added or
// deleted and msgs its messages.
type setTiming struct {
	observe, render, diff, batch, flush, flushSys time.Duration
	elems, msgs                                   int
}

// Open returns an LB in the network namespace of netnsFd (0: the caller's).
// The nftables socket gets buffers large enough for the kernel's answer to
// thousands of messages (a batch of 100 services is ~1 MB).
func Open(netnsFd int, logger *slog.Logger) (*LB, error) {
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(func(c *mdnetlink.Conn) error {
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		err = raw.Control(func(fd uintptr) {
			// FORCE variants: root may exceed net.core.[rw]mem_max.
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 16<<20),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20))
		})
		return errors.Join(err, serr)
	})}
	var nl *netlink.Handle
	var err error
	if netnsFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
		nl, err = netlink.NewHandleAt(netns.NsHandle(netnsFd))
	} else {
		nl, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("kernlb: netlink handle: %w", err)
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("kernlb: nftables connection: %w", err)
	}
	gen, err := mdnetlink.Dial(unix.NETLINK_NETFILTER, &mdnetlink.Config{NetNS: netnsFd})
	if err != nil {
		nl.Close()
		_ = conn.CloseLasting()
		return nil, fmt.Errorf("kernlb: nfnetlink socket: %w", err)
	}
	return &LB{conn: conn, nl: nl, genNL: gen, netnsFd: netnsFd, log: logger.With("component", "kernlb")}, nil
}

// txConn returns the socket for transactions, opening it (with buffers
// for a batch of ~1 MB) if needed.
func (lb *LB) txConn() (*mdnetlink.Conn, error) {
	if lb.txNL != nil {
		return lb.txNL, nil
	}
	c, err := mdnetlink.Dial(unix.NETLINK_NETFILTER, &mdnetlink.Config{NetNS: lb.netnsFd})
	if err != nil {
		return nil, fmt.Errorf("kernlb: nfnetlink socket: %w", err)
	}
	raw, err := c.SyscallConn()
	if err == nil {
		var serr error
		err = raw.Control(func(fd uintptr) {
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 16<<20),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20))
		})
		err = errors.Join(err, serr)
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("kernlb: nfnetlink socket buffers: %w", err)
	}
	lb.txNL = c
	return c, nil
}

// Close closes the sockets.
func (lb *LB) Close() error {
	lb.nl.Close()
	var txErr error
	if lb.txNL != nil {
		txErr = lb.txNL.Close()
	}
	return errors.Join(lb.conn.CloseLasting(), lb.genNL.Close(), txErr)
}

// generation is the nftables ruleset's generation: the kernel adds one on
// every committed transaction of the namespace, by anyone, and none on
// what packets add to sets. An unchanged generation means unchanged tables.
func (lb *LB) generation() (uint32, error) {
	msgs, err := lb.genNL.Execute(mdnetlink.Message{
		Header: mdnetlink.Header{Type: mdnetlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: mdnetlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, fmt.Errorf("kernlb: ruleset generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := mdnetlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("kernlb: ruleset generation: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, fmt.Errorf("kernlb: ruleset generation: no NFTA_GEN_ID in the answer")
}

// Resolve fills what the program needs from the node: for DR services the
// interface's index and MAC, and each server's MAC from the neighbour table
// (asking the kernel to resolve it by ARP when absent, until ctx ends). A
// DR server must be on the interface's segment. Servers that are down need
// no MAC. It returns a copy; cfg is not changed.
func (lb *LB) Resolve(ctx context.Context, cfg Config) (Config, error) {
	out := Config{Services: make([]Service, len(cfg.Services))}
	var errs []error
	for i, s := range cfg.Services {
		s.Servers = append([]Server{}, s.Servers...)
		out.Services[i] = s
		if s.Mode != DR {
			continue
		}
		link, err := lb.nl.LinkByName(s.Interface)
		if err != nil {
			errs = append(errs, fmt.Errorf("kernlb: service %s: interface %s: %w", s.Name, s.Interface, err))
			continue
		}
		s.ifindex, s.ifMAC = link.Attrs().Index, link.Attrs().HardwareAddr
		fam := netlink.FAMILY_V4
		if s.is6() {
			fam = netlink.FAMILY_V6
		}
		addrs, err := lb.nl.AddrList(link, fam)
		if err != nil {
			errs = append(errs, fmt.Errorf("kernlb: service %s: addresses of %s: %w", s.Name, s.Interface, err))
			continue
		}
		for j, srv := range s.Servers {
			if !onSegment(addrs, srv.Address.AsSlice()) {
				errs = append(errs, fmt.Errorf("kernlb: service %s: servers[%d] %v: not on the segment of %s (dr rewrites only Ethernet addresses)", s.Name, j, srv.Address, s.Interface))
				continue
			}
			if srv.MAC != nil || srv.Down {
				continue
			}
			mac, err := lb.neighbour(ctx, link.Attrs().Index, fam, srv.Address.AsSlice())
			if err != nil {
				errs = append(errs, fmt.Errorf("kernlb: service %s: servers[%d] %v on %s: %w", s.Name, j, srv.Address, s.Interface, err))
				continue
			}
			s.Servers[j].MAC = mac
		}
		out.Services[i] = s
	}
	return out, errors.Join(errs...)
}

func onSegment(addrs []netlink.Addr, ip net.IP) bool {
	for _, a := range addrs {
		if a.IPNet != nil && a.IPNet.Contains(ip) && !a.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// neighbour returns ip's MAC from the neighbour table of family fam,
// asking the kernel to resolve it (NTF_USE: the kernel sends the ARP
// request or the IPv6 neighbour solicitation itself) and polling until it
// is known or ctx ends.
func (lb *LB) neighbour(ctx context.Context, ifindex, fam int, ip net.IP) (net.HardwareAddr, error) {
	proto := "ARP"
	if fam == netlink.FAMILY_V6 {
		proto = "neighbour discovery"
	}
	asked := false
	for {
		neighs, err := lb.nl.NeighList(ifindex, fam)
		if err != nil {
			return nil, fmt.Errorf("neighbours: %w", err)
		}
		for _, n := range neighs {
			usable := n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0
			if n.IP.Equal(ip) && usable && len(n.HardwareAddr) == 6 {
				return n.HardwareAddr, nil
			}
		}
		if !asked {
			asked = true
			err := lb.nl.NeighSet(&netlink.Neigh{LinkIndex: ifindex, Family: fam, IP: ip,
				State: netlink.NUD_NONE, Flags: netlink.NTF_USE})
			if err != nil {
				return nil, fmt.Errorf("ask for %s resolution: %w", proto, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no %s answer: %w", proto, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Set makes the tables forward cfg (validated and resolved): nothing when
// Diff finds no change; otherwise one batch, one kernel transaction, that
// edits the agent's chains and sets (batchTable), so that no packet sees
// half of a configuration and a batch the kernel refuses changes nothing.
// The sets the kernel fills (persistence, DR pins, per-source limits) are
// kept when their definition is unchanged; persistence entries that point
// at a server that no longer takes new flows are dropped in the same batch.
// It returns the changes it made.
func (lb *LB) Set(ctx context.Context, cfg Config) ([]ChangeItem, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	observed, gen, err := lb.observe()
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	p, want, err := lb.render(cfg)
	if err != nil {
		return nil, err
	}
	t2 := time.Now()
	changes := diffProgram(want, cfg, observed)
	t3 := time.Now()
	lb.timing = setTiming{observe: t1.Sub(t0), render: t2.Sub(t1), diff: t3.Sub(t2)}
	if len(changes) == 0 {
		return nil, nil
	}
	tx, err := newTxn()
	if err != nil {
		return nil, err
	}
	lb.tx = tx
	for i, tp := range p.tables {
		lb.batchTable(tp, want.Tables[i], observed.Tables[i])
	}
	tx.sync()
	lb.tx = nil
	t4 := time.Now()
	nl, err := lb.txConn()
	if err != nil {
		return nil, err
	}
	lb.cached.ok = false
	// The thread's system time during the commit is the kernel's work on
	// the transaction, which runs within sendmsg.
	runtime.LockOSThread()
	var ru0, ru1 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru0)
	err = tx.commit(nl)
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru1)
	runtime.UnlockOSThread()
	lb.timing.flushSys = time.Duration(ru1.Stime.Nano() - ru0.Stime.Nano())
	lb.timing.batch, lb.timing.flush = t4.Sub(t3), time.Since(t4)
	lb.timing.elems, lb.timing.msgs = tx.elems, len(tx.msgs)
	if err != nil {
		// Refused: its other error messages may still be queued.
		_ = nl.Close()
		lb.txNL = nil
		return nil, fmt.Errorf("kernlb: apply %d change(s) in one batch: %w", len(changes), err)
	}
	// If ours was the only transaction since the observation, the tables
	// are now exactly the program: the next Observe need not read them.
	if after, err := lb.generation(); err == nil && after == gen+1 {
		lb.cached.ok, lb.cached.gen, lb.cached.obs = true, after, want
	}
	for _, c := range changes {
		lb.log.Info("changed", "service", c.Service, "action", string(c.Action), "detail", c.Text)
	}
	return changes, nil
}

// batchTable queues one table's edit on the transaction: chains whose
// rules differ are emptied and refilled, sets whose definition differs are
// replaced (and their service's chain refilled, since its rules point at
// the old set), and the elements of other sets are edited in place, only
// the ones that differ: moving one server of a Maglev table rewrites its
// slots, not the table. Everything goes in the same transaction.
func (lb *LB) batchTable(tp tableProg, want, have *TableState) {
	t := &nftables.Table{Name: TableName, Family: tp.family}
	if want == nil {
		if have != nil {
			lb.tx.lib().DelTable(t)
		}
		return
	}
	lb.tx.lib().AddTable(t)
	if have == nil {
		have = &TableState{}
	}
	progSets := map[string]*setProg{}
	for _, s := range tp.sets {
		progSets[s.set.Name] = s
	}
	// Sets first: which are replaced decides which chains are refilled:
	// a chain whose rules use a replaced set (they point at the old one).
	// The catalog is used by no rule: replacing it leaves the chain be.
	used := usedSets(tp)
	replaced := map[string]bool{} // set names
	dirtySvc := map[string]bool{}
	replace := func(name string) {
		replaced[name] = true
		if used[name] {
			dirtySvc[owner(name, false)] = true
		}
	}
	deltas := map[string][2][]nftables.SetElement{} // del, add
	for name, w := range want.Sets {
		h := have.Sets[name]
		switch {
		case h == nil:
		case h.Def != w.Def:
			replace(name)
		case !w.State && !h.State && progSets[name] != nil && !progSets[name].set.Interval && !sameElems(w, h):
			// A set whose elements mostly change (a Maglev map whose
			// servers all moved) is cheaper to replace whole, with its
			// service's chain, than to edit: one add per element instead
			// of a delete and an add per changed slot.
			del, add := setDelta(progSets[name], h)
			if len(del)+len(add) > max(len(progSets[name].elems), len(progSets[name].slots)) {
				replace(name)
			} else {
				deltas[name] = [2][]nftables.SetElement{del, add}
			}
		}
	}
	chainDirty := func(name string) bool {
		w, h := want.Chains[name], have.Chains[name]
		return h == nil || w.Hook != h.Hook || !slices.Equal(w.Rules, h.Rules) || dirtySvc[owner(name, true)]
	}
	// Empty what goes or changes, so that nothing references what goes.
	// Chains that go are deleted last, once the rules that jump to them
	// are gone. (A base chain's hook never changes under the same name:
	// the name carries the device, and nat's is fixed.)
	var gone []string
	for name := range have.Chains {
		if want.Chains[name] == nil || chainDirty(name) {
			lb.tx.lib().FlushChain(&nftables.Chain{Table: t, Name: name})
		}
		if want.Chains[name] == nil {
			gone = append(gone, name)
		}
	}
	for name, h := range have.Sets {
		w := want.Sets[name]
		set := &nftables.Set{Table: t, Name: name}
		switch {
		case w == nil || replaced[name]:
			lb.tx.lib().DelSet(set)
		case w.State && h.State:
			if ps := progSets[name]; ps != nil && ps.role == "persist" {
				lb.prunePersist(t, ps)
			}
		case !sameElems(w, h):
			ps := progSets[name]
			pset := ps.set
			pset.Table = t
			if pset.Interval {
				// Interval elements are ranges: refill rather than edit.
				lb.tx.lib().FlushSet(&pset)
				lb.tx.setElems(unix.NFT_MSG_NEWSETELEM, &pset, ps.elements())
				continue
			}
			d, ok := deltas[name]
			if !ok {
				d[0], d[1] = setDelta(ps, h)
			}
			del, add := d[0], d[1]
			lb.tx.setElems(unix.NFT_MSG_DELSETELEM, &pset, del)
			lb.tx.setElems(unix.NFT_MSG_NEWSETELEM, &pset, add)
		}
	}
	for _, s := range tp.sets {
		if have.Sets[s.set.Name] != nil && !replaced[s.set.Name] {
			continue
		}
		set := s.set
		set.Table = t
		// Errors of queued operations come back from the commit. The
		// elements follow the set, encoded by the transaction.
		_ = lb.tx.lib().AddSet(&set, nil)
		lb.tx.setElems(unix.NFT_MSG_NEWSETELEM, &set, s.elements())
	}
	chains := map[string]*nftables.Chain{}
	for _, c := range tp.chains {
		ch := &nftables.Chain{Table: t, Name: c.name}
		if c.isBase {
			ch.Type, ch.Hooknum, ch.Priority = c.typ, c.hook, c.prio
			if c.device != "" {
				ch.Device = c.device
			}
			policy := nftables.ChainPolicyAccept
			ch.Policy = &policy
		}
		if have.Chains[c.name] == nil {
			lb.tx.lib().AddChain(ch)
		}
		chains[c.name] = ch
	}
	for _, c := range tp.chains {
		if !chainDirty(c.name) {
			continue
		}
		for _, r := range c.rules {
			lb.tx.lib().AddRule(&nftables.Rule{Table: t, Chain: chains[c.name], Exprs: r.exprs, UserData: comment(r.commentText())})
		}
	}
	for _, name := range gone {
		lb.tx.lib().DelChain(&nftables.Chain{Table: t, Name: name})
	}
}

// usedSets are the sets that the rules of tp name.
func usedSets(tp tableProg) map[string]bool {
	used := map[string]bool{}
	for _, c := range tp.chains {
		for _, r := range c.rules {
			for _, e := range r.exprs {
				switch x := e.(type) {
				case *expr.Lookup:
					used[x.SetName] = true
				case *expr.Dynset:
					used[x.SetName] = true
				}
			}
		}
	}
	return used
}

// setDelta returns the elements to delete from the set have and to add to
// reach the set want. Two dense slot maps (a render and the render the
// tables hold since the last Set) are compared slot by slot, without
// turning them into elements.
func setDelta(want *setProg, have *SetState) (del, add []nftables.SetElement) {
	if want.slots == nil || have.slots == nil {
		return elemDelta(want.elements(), have.elements())
	}
	w, h := want.slots, have.slots
	for i, v := range w {
		switch {
		case i >= len(h):
			add = append(add, nftables.SetElement{Key: slotKey(i), Val: v})
		case !bytes.Equal(h[i], v):
			del = append(del, nftables.SetElement{Key: slotKey(i)})
			add = append(add, nftables.SetElement{Key: slotKey(i), Val: v})
		}
	}
	for i := len(w); i < len(h); i++ {
		del = append(del, nftables.SetElement{Key: slotKey(i)})
	}
	return del, add
}

// elemDelta returns the elements to delete from have and to add to reach
// want (a changed value is a delete and an add).
func elemDelta(want, have []nftables.SetElement) (del, add []nftables.SetElement) {
	if del, add, ok := slotDelta(want, have); ok {
		return del, add
	}
	return mapDelta(want, have)
}

// mapDelta is elemDelta for any set, through a map of the keys.
func mapDelta(want, have []nftables.SetElement) (del, add []nftables.SetElement) {
	hv := make(map[string][]byte, len(have))
	for _, e := range have {
		hv[string(e.Key)] = e.Val
	}
	wk := make(map[string]bool, len(want))
	for _, e := range want {
		wk[string(e.Key)] = true
		v, ok := hv[string(e.Key)]
		if ok && bytes.Equal(v, e.Val) {
			continue
		}
		if ok {
			del = append(del, nftables.SetElement{Key: e.Key})
		}
		add = append(add, e)
	}
	for _, e := range have {
		if !wk[string(e.Key)] {
			del = append(del, nftables.SetElement{Key: e.Key})
		}
	}
	return del, add
}

// slotDelta is elemDelta for the slot maps (4-byte keys, slot numbers
// below MaxTableSize), indexed by slot instead of by a map of strings: a
// change of 100 Maglev services compares 100,000 slots. It reports false
// for any other set.
func slotDelta(want, have []nftables.SetElement) (del, add []nftables.SetElement, ok bool) {
	slot := func(e *nftables.SetElement) int {
		if len(e.Key) != 4 || e.IntervalEnd {
			return -1
		}
		if n := binary.NativeEndian.Uint32(e.Key); n < MaxTableSize {
			return int(n)
		}
		return -1
	}
	n := 0
	for _, es := range [2][]nftables.SetElement{want, have} {
		for i := range es {
			k := slot(&es[i])
			if k < 0 {
				return nil, nil, false
			}
			n = max(n, k+1)
		}
	}
	// inHave[k]: 1 + the index in have of slot k's element (0: none);
	// inWant[k]: slot k is wanted.
	inHave := make([]int32, n)
	inWant := make([]bool, n)
	del = make([]nftables.SetElement, 0, len(have)/4)
	add = make([]nftables.SetElement, 0, len(want)/4)
	for i := range have {
		inHave[slot(&have[i])] = int32(i + 1)
	}
	for i := range want {
		e := &want[i]
		k := slot(e)
		inWant[k] = true
		if j := inHave[k]; j > 0 {
			if bytes.Equal(have[j-1].Val, e.Val) {
				continue
			}
			del = append(del, nftables.SetElement{Key: e.Key})
		}
		add = append(add, *e)
	}
	for i := range have {
		if k := slot(&have[i]); !inWant[k] {
			del = append(del, nftables.SetElement{Key: have[i].Key})
		}
	}
	return del, add, true
}

// prunePersist queues the removal of persistence entries whose server no
// longer takes new flows (drained, down, removed): a persistent client must
// not keep bringing new flows to a drained server.
func (lb *LB) prunePersist(t *nftables.Table, s *setProg) {
	set := s.set
	set.Table = t
	elems, err := lb.conn.GetSetElements(&set)
	if err != nil {
		lb.log.Warn("read persistence entries", "set", set.Name, "err", err)
		return
	}
	var stale []nftables.SetElement
	for _, e := range elems {
		if !s.liveValues[string(e.Val)] {
			stale = append(stale, nftables.SetElement{Key: e.Key})
		}
	}
	if len(stale) > 0 {
		lb.tx.setElems(unix.NFT_MSG_DELSETELEM, &set, stale)
	}
}
