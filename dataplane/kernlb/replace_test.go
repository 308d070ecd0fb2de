package kernlb

import "testing"

// TestReplaceMovedMap: when every slot of a Maglev map moves (all servers
// replaced), Set replaces the map whole with its chain in one batch; the
// tables then match the program exactly and traffic reaches the new
// servers.
func TestReplaceMovedMap(t *testing.T) {
	l := newKernLab(t, NAT)
	l.holdVIP(0)
	l.serve()
	lb := l.lb(0)
	old := l.service(TCP, Maglev)
	for i := range old.Servers {
		old.Servers[i].Port = 9999 // nothing listens: every slot will move
	}
	set(t, lb, Config{Services: []Service{old}})
	cur := Config{Services: []Service{l.service(TCP, Maglev)}}
	if ch := set(t, lb, cur); len(ch) != 1 {
		t.Fatalf("changes %v, want the service's", ch)
	}
	lb.cached.ok = false // read the kernel's tables, not what Set wrote
	obs, err := lb.Observe()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := Diff(cur, obs); err != nil || len(d) != 0 {
		t.Fatalf("after the replace the tables differ: %v %v", d, err)
	}
	for i := 0; i < 10; i++ {
		if _, _, err := l.once(); err != nil {
			t.Fatalf("connection %d after the replace: %v", i, err)
		}
	}
}

// TestLargeTable: a Maglev map of the largest size (65,537 slots, 2.4 MB
// of elements) is written in one transaction, its elements split over
// several messages (a netlink attribute's length is 16 bits), and reads
// back whole.
func TestLargeTable(t *testing.T) {
	l := newKernLab(t, NAT)
	l.holdVIP(0)
	l.serve()
	lb := l.lb(0)
	svc := l.service(TCP, Maglev)
	svc.TableSize = MaxTableSize
	cfg := Config{Services: []Service{svc}}
	set(t, lb, cfg)
	if lb.timing.elems < MaxTableSize {
		t.Fatalf("%d elements written, want at least %d", lb.timing.elems, MaxTableSize)
	}
	lb.cached.ok = false // read the kernel's tables, not what Set wrote
	obs, err := lb.Observe()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := Diff(cfg, obs); err != nil || len(d) != 0 {
		t.Fatalf("the tables differ from the large table: %v %v", d, err)
	}
	if _, _, err := l.once(); err != nil {
		t.Fatalf("a connection through the large table: %v", err)
	}
}
