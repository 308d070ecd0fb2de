package nic

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// TestWindow reads /proc files that change between samples (testdata/
// window: NET_RX spread evenly for a long time since boot, then pinned to
// CPU0 at 90 % for a minute, then spread again) and checks what the plan
// and status lines and the metrics get after each sample.
func TestWindow(t *testing.T) {
	f := newFakeNode(t, "0-3", "0-3")
	f.nic("eth0", 1, 1, 37, 38, 39)
	cfg := Config{Interfaces: []Interface{{Name: "eth0", RPSCPUs: "all"}}}
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	now := t0
	s := NewSampler(f.proc, 0)
	s.Now = func() time.Time { return now }
	tu := f.tuner()
	tu.Window = s

	for i, tc := range []struct {
		at time.Duration
		// The lines Observe reports, then the window's figures.
		imbalance []string
		ok, full  bool
		readings  int
		shares    []float64
		total     uint64 // NET_RX since boot, cpu0
	}{
		{at: 0, readings: 1, imbalance: []string{
			"NET_RX softirqs since boot: cpu0 25%, cpu1 25%, cpu2 25%, cpu3 25% — busiest cpu0 25% (even: 25%) of 400000",
			"eth0 interrupts since boot: cpu0 50%, cpu1 50%, cpu2 0%, cpu3 0% — busiest cpu0 50% (even: 25%) of 120000"}},
		{at: 30 * time.Second, ok: true, readings: 2, shares: []float64{.9, .04, .03, .03}, total: 104500, imbalance: []string{
			"NET_RX softirqs over the 30s since sampling began: cpu0 90%, cpu1 4%, cpu2 3%, cpu3 3% — busiest cpu0 90% (even: 25%) of 5000",
			"eth0 interrupts over the 30s since sampling began: cpu0 90%, cpu1 10%, cpu2 0%, cpu3 0% — busiest cpu0 90% (even: 25%) of 3000"}},
		{at: 60 * time.Second, ok: true, full: true, readings: 3, shares: []float64{.9, .04, .03, .03}, total: 109000, imbalance: []string{
			"NET_RX softirqs over the last 1m0s: cpu0 90%, cpu1 4%, cpu2 3%, cpu3 3% — busiest cpu0 90% (even: 25%) of 10000",
			"eth0 interrupts over the last 1m0s: cpu0 90%, cpu1 10%, cpu2 0%, cpu3 0% — busiest cpu0 90% (even: 25%) of 6000"}},
		// The oldest reading is forgotten: the window starts at 30s.
		{at: 90 * time.Second, ok: true, full: true, readings: 3, shares: []float64{4600. / 14100, 3200. / 14100, 3150. / 14100, 3150. / 14100}, total: 109100, imbalance: []string{
			"NET_RX softirqs over the last 1m0s: cpu0 33%, cpu1 23%, cpu2 22%, cpu3 22% — busiest cpu0 33% (even: 25%) of 14100",
			"eth0 interrupts over the last 1m0s: cpu0 46%, cpu1 54%, cpu2 0%, cpu3 0% — busiest cpu1 54% (even: 25%) of 6100"}},
	} {
		t.Run(fmt.Sprint(tc.at), func(t *testing.T) {
			now = t0.Add(tc.at)
			f.copyProc("softirqs", fmt.Sprintf("testdata/window/softirqs.%d", i))
			f.copyProc("interrupts", fmt.Sprintf("testdata/window/interrupts.%d", i))
			if err := s.Sample(); err != nil {
				t.Fatal(err)
			}
			if n := len(s.win.readings); n != tc.readings {
				t.Errorf("%d readings kept, want %d", n, tc.readings)
			}
			st, err := tu.Observe(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Imbalance(); !slices.Equal(got, tc.imbalance) {
				t.Errorf("imbalance:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.imbalance, "\n"))
			}
			r, ok := s.Recent()
			if ok != tc.ok || r.Full != tc.full {
				t.Fatalf("Recent: ok %v full %v, want %v %v", ok, r.Full, tc.ok, tc.full)
			}
			if !ok {
				return
			}
			got := r.NetRX.Shares()
			for i := range tc.shares {
				if i >= len(got) || got[i] < tc.shares[i]-1e-9 || got[i] > tc.shares[i]+1e-9 {
					t.Errorf("shares %v, want %v", got, tc.shares)
					break
				}
			}
			if c := r.Total.PerCPU[0]; c.CPU != 0 || c.Count != tc.total {
				t.Errorf("since boot cpu0 = %v, want %d", c, tc.total)
			}
		})
	}
}

// TestWindowUnreadable: without /proc files the sampler says why, and
// Observe still reports (a warning, no spread).
func TestWindowUnreadable(t *testing.T) {
	s := NewSampler(t.TempDir(), 0)
	err := s.Sample()
	if err == nil || !strings.Contains(err.Error(), "softirqs") || !strings.Contains(err.Error(), "interrupts") {
		t.Errorf("Sample: %v", err)
	}
	if _, ok := s.Recent(); ok {
		t.Error("a window from one empty reading")
	}
	var nilSampler *Sampler
	if _, ok := nilSampler.Recent(); ok {
		t.Error("a nil sampler has a window")
	}
}

// TestSamplerRun: the loop samples at once and every few seconds, and ends
// when its context does (fake time in a synctest bubble).
func TestSamplerRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNode(t, "0-3", "0-3")
		s := NewSampler(f.proc, time.Minute)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Run(ctx, 0)
		}()
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		r, ok := s.Recent()
		if !ok || !r.Full || r.To.Sub(r.From) != time.Minute {
			t.Errorf("after 61s: ok %v full %v, %s", ok, r.Full, r.To.Sub(r.From))
		}
		s.mu.Lock()
		n := len(s.win.readings)
		s.mu.Unlock()
		if n != 13 { // at 0s, 5s, … 60s
			t.Errorf("%d readings kept, want 13", n)
		}
		cancel()
		<-done
	})
}

// TestSamplerHostProc: two readings of the test host's /proc make a
// window with one share per CPU the kernel lists.
func TestSamplerHostProc(t *testing.T) {
	if _, err := os.Stat("/proc/softirqs"); err != nil {
		lab.Unavailable(t, "no /proc/softirqs: %v", err)
	}
	s := NewSampler("", 0)
	for range 2 {
		if err := s.Sample(); err != nil {
			t.Fatal(err)
		}
	}
	r, ok := s.Recent()
	if !ok || r.Full {
		t.Fatalf("ok %v full %v", ok, r.Full)
	}
	if n := len(r.Total.PerCPU); n == 0 || len(r.NetRX.Shares()) != n || r.Total.Total() == 0 {
		t.Errorf("NET_RX: window %v, since boot %v", r.NetRX, r.Total)
	}
	if len(r.irqs) == 0 {
		t.Error("no numbered interrupt row read")
	}
}
