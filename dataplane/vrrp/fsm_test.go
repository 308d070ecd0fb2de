package vrrp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	t0   = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	self = netip.MustParseAddr("203.0.113.11")
	peer = netip.MustParseAddr("203.0.113.12") // greater than self
	low  = netip.MustParseAddr("203.0.113.5")  // smaller than self
)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestTimers(t *testing.T) {
	for _, c := range []struct {
		prio      uint8
		mai       time.Duration
		skew, mdi time.Duration
	}{
		{100, 100 * time.Millisecond, 60937500, 360937500},
		{100, time.Second, 609375000, 3609375000},
		{150, 100 * time.Millisecond, 41406250, 341406250},
		{254, 10 * time.Millisecond, 78125, 30078125},
		{1, time.Second, 996093750, 3996093750},
	} {
		if got := SkewTime(c.prio, c.mai); got != c.skew {
			t.Errorf("Skew(%d,%v)=%v want %v", c.prio, c.mai, got, c.skew)
		}
		if got := MasterDownInterval(c.prio, c.mai); got != c.mdi {
			t.Errorf("MDI(%d,%v)=%v want %v", c.prio, c.mai, got, c.mdi)
		}
	}
}

// step is one input to the machine at t0+at, with the outputs and the state
// expected after it.
type step struct {
	at   time.Duration
	op   string // start, startfault, tick, advert, fault, unfault, shutdown, update, force-master, force-backup
	from netip.Addr
	prio uint8
	intv time.Duration
	p    *Params
	want []Output
	st   State
	// deadline, if set, is the expected Deadline()-t0 afterwards.
	deadline time.Duration
}

func send(p uint8) Output { return Output{Kind: OutSend, Priority: p} }
func tr(from, to State) Output {
	return Output{Kind: OutTransition, From: from, To: to}
}

var announce = Output{Kind: OutAnnounce}

func TestMachine(t *testing.T) {
	base := Params{Version: 3, Priority: 100, Interval: 100 * time.Millisecond, Preempt: true, Primary: self}
	with := func(f func(p *Params)) Params { p := base; f(&p); return p }
	mdi100 := MasterDownInterval(100, 100*time.Millisecond) // 360.9375 ms
	skew100 := SkewTime(100, 100*time.Millisecond)          // 60.9375 ms
	for _, c := range []struct {
		name  string
		p     Params
		steps []step
	}{
		{"backup waits the master down interval then takes over", base, []step{
			{op: "start", want: []Output{tr(StateInit, StateBackup)}, st: StateBackup, deadline: mdi100},
			{at: mdi100 - 1, op: "tick", st: StateBackup},
			{at: mdi100, op: "tick", want: []Output{send(100), tr(StateBackup, StateMaster)}, st: StateMaster, deadline: mdi100 + ms(100)},
			{at: mdi100 + ms(100), op: "tick", want: []Output{send(100)}, st: StateMaster, deadline: mdi100 + ms(200)},
		}},
		{"owner becomes master at once", with(func(p *Params) { p.Priority = 255 }), []step{
			{op: "start", want: []Output{send(255), tr(StateInit, StateMaster)}, st: StateMaster, deadline: ms(100)},
		}},
		{"fault at start", base, []step{
			{op: "startfault", want: []Output{tr(StateInit, StateFault)}, st: StateFault},
			{at: ms(5000), op: "tick", st: StateFault},
			{at: ms(5000), op: "unfault", want: []Output{tr(StateFault, StateBackup)}, st: StateBackup, deadline: ms(5000) + mdi100},
		}},
		{"higher priority adverts keep a backup; v3 adopts the master's interval", base, []step{
			{op: "start", want: []Output{tr(StateInit, StateBackup)}, st: StateBackup},
			{at: ms(300), op: "advert", from: peer, prio: 150, intv: time.Second, st: StateBackup, deadline: ms(300) + MasterDownInterval(100, time.Second)},
			{at: ms(1000), op: "tick", st: StateBackup},
		}},
		{"equal priority never makes a backup take over", base, []step{
			{op: "start", want: []Output{tr(StateInit, StateBackup)}, st: StateBackup},
			{at: ms(300), op: "advert", from: low, prio: 100, intv: ms(100), st: StateBackup, deadline: ms(300) + mdi100},
		}},
		{"priority 0 cuts the wait to skew time", base, []step{
			{op: "start", want: []Output{tr(StateInit, StateBackup)}, st: StateBackup},
			{at: ms(50), op: "advert", from: peer, prio: 150, intv: ms(100), st: StateBackup},
			{at: ms(100), op: "advert", from: peer, prio: 0, intv: ms(100), st: StateBackup, deadline: ms(100) + skew100},
			{at: ms(100) + skew100, op: "tick", want: []Output{send(100), tr(StateBackup, StateMaster)}, st: StateMaster},
		}},
		{"preempt: lower priority adverts are discarded so the backup takes over", base, []step{
			{op: "start", want: []Output{tr(StateInit, StateBackup)}, st: StateBackup},
			{at: ms(100), op: "advert", from: peer, prio: 50, intv: ms(100), st: StateBackup, deadline: mdi100},
			{at: mdi100, op: "tick", want: []Output{send(100), tr(StateBackup, StateMaster)}, st: StateMaster},
		}},
		{"nopreempt: a lower priority master is kept", with(func(p *Params) { p.Preempt = false }), []step{
			{op: "start", want: []Output{tr(StateInit, StateBackup)}, st: StateBackup},
			{at: ms(100), op: "advert", from: peer, prio: 50, intv: ms(100), st: StateBackup, deadline: ms(100) + mdi100},
			{at: ms(400), op: "advert", from: peer, prio: 50, intv: ms(100), st: StateBackup},
			{at: ms(700), op: "tick", st: StateBackup},
		}},
		{"preempt delay holds preemption", with(func(p *Params) { p.PreemptDelay = time.Second }), []step{
			{op: "start", want: []Output{tr(StateInit, StateBackup)}, st: StateBackup},
			{at: ms(100), op: "advert", from: peer, prio: 50, intv: ms(100), st: StateBackup, deadline: ms(100) + mdi100},
			{at: ms(1000), op: "advert", from: peer, prio: 50, intv: ms(100), st: StateBackup, deadline: ms(1000) + mdi100},
			{at: ms(1100), op: "advert", from: peer, prio: 50, intv: ms(100), st: StateBackup, deadline: ms(1000) + mdi100},
			{at: ms(1000) + mdi100, op: "tick", want: []Output{send(100), tr(StateBackup, StateMaster)}, st: StateMaster},
		}},
		{"master yields to a higher priority", with(func(p *Params) { p.Priority = 255 }), []step{
			{op: "start", want: []Output{send(255), tr(StateInit, StateMaster)}, st: StateMaster},
			{op: "update", p: ptr(base), st: StateMaster},
			{at: ms(10), op: "advert", from: low, prio: 200, intv: ms(200), want: []Output{send(100), tr(StateMaster, StateBackup)}, st: StateBackup, deadline: ms(10) + MasterDownInterval(100, ms(200))},
		}},
		{"master yields on equal priority to a greater address", with(func(p *Params) { p.Priority = 255 }), []step{
			{op: "start", want: []Output{send(255), tr(StateInit, StateMaster)}, st: StateMaster},
			{op: "update", p: ptr(base), st: StateMaster},
			{at: ms(10), op: "advert", from: peer, prio: 100, intv: ms(100), want: []Output{send(100), tr(StateMaster, StateBackup)}, st: StateBackup},
		}},
		{"master re-asserts and re-announces against a lower or smaller router", with(func(p *Params) { p.Priority = 255 }), []step{
			{op: "start", want: []Output{send(255), tr(StateInit, StateMaster)}, st: StateMaster},
			{op: "update", p: ptr(base), st: StateMaster},
			{at: ms(30), op: "advert", from: low, prio: 100, intv: ms(100), want: []Output{send(100), announce}, st: StateMaster, deadline: ms(130)},
			{at: ms(40), op: "advert", from: peer, prio: 99, intv: ms(100), want: []Output{send(100), announce}, st: StateMaster, deadline: ms(140)},
		}},
		{"master answers priority 0 with an advert", with(func(p *Params) { p.Priority = 255 }), []step{
			{op: "start", want: []Output{send(255), tr(StateInit, StateMaster)}, st: StateMaster},
			{at: ms(30), op: "advert", from: peer, prio: 0, intv: ms(100), want: []Output{send(255)}, st: StateMaster, deadline: ms(130)},
		}},
		{"master to fault sends priority 0, back to backup", with(func(p *Params) { p.Priority = 255 }), []step{
			{op: "start", want: []Output{send(255), tr(StateInit, StateMaster)}, st: StateMaster},
			{at: ms(30), op: "fault", want: []Output{send(0), tr(StateMaster, StateFault)}, st: StateFault},
			{at: ms(40), op: "advert", from: peer, prio: 100, intv: ms(100), st: StateFault},
			{at: ms(50), op: "update", p: ptr(base), st: StateFault},
			{at: ms(50), op: "unfault", want: []Output{tr(StateFault, StateBackup)}, st: StateBackup},
		}},
		{"shutdown of a master sends priority 0", with(func(p *Params) { p.Priority = 255 }), []step{
			{op: "start", want: []Output{send(255), tr(StateInit, StateMaster)}, st: StateMaster},
			{at: ms(30), op: "shutdown", want: []Output{send(0), tr(StateMaster, StateInit)}, st: StateInit},
		}},
		{"shutdown of a backup is silent", base, []step{
			{op: "start", want: []Output{tr(StateInit, StateBackup)}, st: StateBackup},
			{at: ms(30), op: "shutdown", want: []Output{tr(StateBackup, StateInit)}, st: StateInit},
		}},
		{"hot update of priority and interval causes no transition", base, []step{
			{op: "start", want: []Output{tr(StateInit, StateBackup)}, st: StateBackup},
			{at: ms(50), op: "advert", from: peer, prio: 150, intv: ms(100), st: StateBackup},
			{at: ms(60), op: "update", p: ptr(with(func(p *Params) { p.Priority = 120; p.Interval = ms(50) })), st: StateBackup, deadline: ms(50) + mdi100},
			{at: mdi100, op: "tick", st: StateBackup},
			{at: ms(60) + mdi100, op: "tick", want: []Output{send(120), tr(StateBackup, StateMaster)}, st: StateMaster},
			{at: ms(440), op: "update", p: ptr(with(func(p *Params) { p.Priority = 130; p.Interval = ms(20) })), st: StateMaster, deadline: ms(460)},
			{at: ms(460), op: "tick", want: []Output{send(130)}, st: StateMaster, deadline: ms(480)},
		}},
		{"sync group forcing", base, []step{
			{op: "start", want: []Output{tr(StateInit, StateBackup)}, st: StateBackup},
			{at: ms(10), op: "force-master", want: []Output{send(100), tr(StateBackup, StateMaster)}, st: StateMaster},
			{at: ms(20), op: "force-master", st: StateMaster},
			{at: ms(30), op: "force-backup", want: []Output{tr(StateMaster, StateBackup)}, st: StateBackup, deadline: ms(30) + mdi100},
		}},
		{"master stalled: the advert schedule restarts from now", with(func(p *Params) { p.Priority = 255 }), []step{
			{op: "start", want: []Output{send(255), tr(StateInit, StateMaster)}, st: StateMaster},
			{at: ms(150), op: "tick", want: []Output{send(255)}, st: StateMaster, deadline: ms(200)},
			{at: ms(900), op: "tick", want: []Output{send(255)}, st: StateMaster, deadline: ms(1000)},
		}},
		{"aligned adverts follow the epoch grid", with(func(p *Params) { p.Priority = 255; p.Epoch = t0.Add(-ms(1005)) }), []step{
			{op: "start", want: []Output{send(255), tr(StateInit, StateMaster)}, st: StateMaster, deadline: ms(95)},
			{at: ms(95), op: "tick", want: []Output{send(255)}, st: StateMaster, deadline: ms(195)},
			{at: ms(130), op: "advert", from: low, prio: 100, intv: ms(100), want: []Output{send(255), announce}, st: StateMaster, deadline: ms(195)},
			{at: ms(600), op: "tick", want: []Output{send(255)}, st: StateMaster, deadline: ms(695)},
		}},
		{"v2 keeps its own interval", with(func(p *Params) { p.Version = 2; p.Interval = time.Second }), []step{
			{op: "start", want: []Output{tr(StateInit, StateBackup)}, st: StateBackup},
			{at: ms(100), op: "advert", from: peer, prio: 150, intv: 3 * time.Second, st: StateBackup, deadline: ms(100) + MasterDownInterval(100, time.Second)},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewMachine(c.p)
			for i, s := range c.steps {
				now := t0.Add(s.at)
				var out []Output
				switch s.op {
				case "start":
					out = m.Start(now, false)
				case "startfault":
					out = m.Start(now, true)
				case "tick":
					out = m.Tick(now)
				case "advert":
					out = m.Advert(now, s.from, s.prio, s.intv)
				case "fault":
					out = m.SetFault(now, true, "")
				case "unfault":
					out = m.SetFault(now, false, "")
				case "shutdown":
					out = m.Shutdown("")
				case "update":
					out = m.Update(now, *s.p)
				case "force-master":
					out = m.Force(now, StateMaster, "")
				case "force-backup":
					out = m.Force(now, StateBackup, "")
				default:
					t.Fatalf("bad op %q", s.op)
				}
				for j := range out {
					out[j].Reason = ""
				}
				if diff := cmp.Diff(s.want, out); diff != "" {
					t.Fatalf("step %d (%s @%v): outputs (-want +got):\n%s", i, s.op, s.at, diff)
				}
				if m.State() != s.st {
					t.Fatalf("step %d (%s @%v): state %v, want %v", i, s.op, s.at, m.State(), s.st)
				}
				if s.deadline != 0 {
					if got := m.Deadline().Sub(t0); got != s.deadline {
						t.Fatalf("step %d (%s @%v): deadline %v, want %v", i, s.op, s.at, got, s.deadline)
					}
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
