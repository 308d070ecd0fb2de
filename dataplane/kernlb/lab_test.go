package kernlb

import (
	"fmt"
	"strings"
	"testing"
)

// TestDR: a DR service on gateway 1 spreads connections over both servers,
// each of which sees the client's own address and answers it directly
// (the gateway does not route: ip_forward=0).
func TestDR(t *testing.T) {
	l := newKernLab(t, DR)
	l.holdVIP(0)
	l.serve()
	lb := l.lb(0)
	cfg := Config{Services: []Service{l.service(TCP, Maglev)}}
	set(t, lb, cfg)
	if ch := set(t, lb, cfg); len(ch) != 0 {
		t.Errorf("second Set with the same config changed %v", ch)
	}
	seen := map[string]int{}
	for range 40 {
		srv, addr, err := l.once()
		if err != nil {
			t.Fatalf("connection through the VIP: %v", err)
		}
		if !strings.HasPrefix(addr, clientIP+":") {
			t.Fatalf("%s saw %s, want the client's own address %s", srv, addr, clientIP)
		}
		seen[srv]++
	}
	if len(seen) != 2 {
		t.Errorf("40 connections reached %v, want both servers", seen)
	}
	t.Logf("spread: %v", fmt.Sprint(seen))
}
