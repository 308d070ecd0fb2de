package l4proxy

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"
)

var (
	// errNoServer: no server can take traffic (all down, drained or in maintenance).
	errNoServer = errors.New("no server available")
	// errFull: servers are up but every one is at its maxconn.
	errFull = errors.New("every server at maxconn")
)

// lbTable is an immutable view of which servers may take new connections,
// rebuilt whenever a server's weight, state or health changes. Pickers read
// it through an atomic pointer: the hot path takes no service-wide lock.
type lbTable struct {
	primary, backup []*server
	pw, bw          []int64 // weights, index-aligned
	pring, bring    ring
}

func buildTable(servers []*server) *lbTable {
	t := &lbTable{}
	for _, s := range servers {
		cfg := s.cfg.Load()
		if !s.eligible() {
			continue
		}
		if cfg.Backup {
			t.backup = append(t.backup, s)
			t.bw = append(t.bw, int64(cfg.Weight))
		} else {
			t.primary = append(t.primary, s)
			t.pw = append(t.pw, int64(cfg.Weight))
		}
	}
	t.pring = buildRing(t.primary, t.pw)
	t.bring = buildRing(t.backup, t.bw)
	return t
}

// ring is a consistent-hash ring: points sorted by hash, each owned by a
// server; a server gets a number of points proportional to its weight.
type ring struct {
	hashes []uint64
	owner  []int32
}

const pointsPerWeight = 16

func buildRing(servers []*server, weights []int64) ring {
	type pt struct {
		h uint64
		o int32
	}
	var pts []pt
	for i, s := range servers {
		n := int(weights[i]) * pointsPerWeight
		for k := 0; k < n; k++ {
			h := fnvString(s.name)
			h = fnvMix(h, uint64(k))
			pts = append(pts, pt{h, int32(i)})
		}
	}
	slices.SortFunc(pts, func(a, b pt) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return int(a.o - b.o)
	})
	r := ring{hashes: make([]uint64, len(pts)), owner: make([]int32, len(pts))}
	for i, p := range pts {
		r.hashes[i], r.owner[i] = p.h, p.o
	}
	return r
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func fnvMix(h, v uint64) uint64 {
	for i := 0; i < 8; i++ {
		h ^= v & 0xff
		h *= fnvPrime
		v >>= 8
	}
	// Final avalanche so that neighbouring inputs spread over the ring.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

func hashAddr(a netip.Addr) uint64 {
	b := a.As16()
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return fnvMix(h, 0)
}

// picker holds the mutable balancing state of one listener shard (smooth
// round-robin current weights, a rotation for tie-breaks). Connections
// accepted on a shard pick through it, so its lock is shared only by the
// connections of that shard.
type picker struct {
	mu       sync.Mutex
	tbl      *lbTable
	cw, cwb  []int64
	rotation int
}

// pick chooses a server for a new connection from tbl, skipping those in
// tried. Balancing that may use any server (roundrobin, leastconn, first)
// skips servers at their maxconn; a connection bound to one server — by its
// persistence entry or its source hash — is not moved off it because it is
// full. pick returns errNoServer when no server is eligible and errFull when
// the connection must wait for a slot: then the returned server, if not
// nil, is the one it must wait for (its own queue), else any (the service
// queue).
func (p *picker) pick(svc *service, tbl *lbTable, set *settings, client netip.Addr, tried []*server) (*server, error) {
	servers, weights, rg := tbl.primary, tbl.pw, &tbl.pring
	backup := false
	if len(servers) == 0 {
		servers, weights, rg = tbl.backup, tbl.bw, &tbl.bring
		backup = true
	}
	if len(servers) == 0 {
		return nil, errNoServer
	}
	if set.Persistence > 0 {
		if s := svc.sticky.get(client, monoNow()); s != nil && s.eligibleIn(servers) && !slices.Contains(tried, s) {
			if s.full() {
				return s, errFull
			}
			return s, nil
		}
	}
	var chosen *server
	switch set.Balance {
	case LeastConn:
		chosen = p.leastConn(servers, weights, tried)
	case Source:
		chosen = pickRing(rg, servers, hashAddr(client), tried)
		if chosen != nil && chosen.full() {
			return chosen, errFull
		}
	case First:
		for _, s := range servers {
			if !s.full() && !slices.Contains(tried, s) {
				chosen = s
				break
			}
		}
	default:
		chosen = p.roundRobin(tbl, backup, servers, weights, tried)
	}
	if chosen == nil {
		if len(tried) > 0 {
			// Every untried server is full or none is left: allow a retry on
			// a server already tried rather than failing outright.
			for _, s := range servers {
				if !s.full() {
					chosen = s
					break
				}
			}
		}
		if chosen == nil {
			return nil, errFull
		}
	}
	if set.Persistence > 0 {
		svc.sticky.put(client, chosen, monoNow()+int64(set.Persistence))
	}
	return chosen, nil
}

// roundRobin is smooth weighted round robin: every eligible server's current
// weight grows by its weight, the largest wins and pays back the total.
func (p *picker) roundRobin(tbl *lbTable, backup bool, servers []*server, weights []int64, tried []*server) *server {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tbl != tbl {
		p.tbl = tbl
		p.cw = make([]int64, len(tbl.primary))
		p.cwb = make([]int64, len(tbl.backup))
	}
	cw := p.cw
	if backup {
		cw = p.cwb
	}
	var total int64
	best := -1
	for i, s := range servers {
		if s.full() || slices.Contains(tried, s) {
			continue
		}
		cw[i] += weights[i]
		total += weights[i]
		if best < 0 || cw[i] > cw[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	cw[best] -= total
	return servers[best]
}

// leastConn picks the server with the fewest connections per weight,
// starting the scan at a rotating index so that ties spread.
func (p *picker) leastConn(servers []*server, weights []int64, tried []*server) *server {
	p.mu.Lock()
	p.rotation++
	start := p.rotation
	p.mu.Unlock()
	var best *server
	var bestCur, bestW int64
	n := len(servers)
	for k := 0; k < n; k++ {
		i := (start + k) % n
		s := servers[i]
		if s.full() || slices.Contains(tried, s) {
			continue
		}
		cur := s.cur.Load() + 1
		if best == nil || cur*bestW < bestCur*weights[i] {
			best, bestCur, bestW = s, cur, weights[i]
		}
	}
	return best
}

func pickRing(r *ring, servers []*server, h uint64, tried []*server) *server {
	n := len(r.hashes)
	if n == 0 {
		return nil
	}
	i, _ := slices.BinarySearch(r.hashes, h)
	for k := 0; k < n; k++ {
		s := servers[r.owner[(i+k)%n]]
		if !slices.Contains(tried, s) {
			return s
		}
	}
	return nil
}

// stickyTable maps a client address to the server it last used, sharded so
// that persistence takes no lock shared by every connection.
type stickyTable struct {
	shards [16]stickyShard
}

type stickyShard struct {
	mu sync.Mutex
	m  map[netip.Addr]stickyEntry
}

type stickyEntry struct {
	srv     *server
	expires int64
}

func (t *stickyTable) shard(a netip.Addr) *stickyShard {
	return &t.shards[hashAddr(a)%uint64(len(t.shards))]
}

func (t *stickyTable) get(a netip.Addr, now int64) *server {
	sh := t.shard(a)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[a]
	if !ok {
		return nil
	}
	if e.expires < now {
		delete(sh.m, a)
		return nil
	}
	return e.srv
}

func (t *stickyTable) put(a netip.Addr, s *server, expires int64) {
	sh := t.shard(a)
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = make(map[netip.Addr]stickyEntry)
	}
	sh.m[a] = stickyEntry{s, expires}
	sh.mu.Unlock()
}

// touch extends an entry's life after a connection closes: persistence
// counts from a client's last connection.
func (t *stickyTable) touch(a netip.Addr, s *server, expires int64) {
	sh := t.shard(a)
	sh.mu.Lock()
	if e, ok := sh.m[a]; ok && e.srv == s && e.expires < expires {
		sh.m[a] = stickyEntry{s, expires}
	}
	sh.mu.Unlock()
}

// expire drops every entry that expired before now, and entries of removed servers.
func (t *stickyTable) expire(now int64) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for a, e := range sh.m {
			if e.expires < now || e.srv.removed.Load() {
				delete(sh.m, a)
			}
		}
		sh.mu.Unlock()
	}
}

func (t *stickyTable) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// monoBase anchors the monotonic nanosecond clock used by hot-path stamps.
var monoBase = time.Now()

func monoNow() int64 { return int64(time.Since(monoBase)) }
