package healthcheck

import (
	"testing"
	"time"
)

func TestHealthMachine(t *testing.T) {
	ck := (&Check{Interval: 2 * time.Second, FastInterval: 200 * time.Millisecond, DownInterval: 5 * time.Second, Rise: 2, Fall: 3}).WithDefaults()
	type step struct {
		ok      bool
		flip    bool
		up      bool
		nextInt time.Duration
	}
	tests := []struct {
		name  string
		start bool
		steps []step
	}{
		{"up stays up", true, []step{{true, false, true, 2 * time.Second}, {true, false, true, 2 * time.Second}}},
		{"falls after 3 failures, fast interval while falling", true, []step{
			{false, false, true, 200 * time.Millisecond},
			{false, false, true, 200 * time.Millisecond},
			{false, true, false, 5 * time.Second},
			{false, false, false, 5 * time.Second},
		}},
		{"a success resets the fall count", true, []step{
			{false, false, true, 200 * time.Millisecond},
			{false, false, true, 200 * time.Millisecond},
			{true, false, true, 2 * time.Second},
			{false, false, true, 200 * time.Millisecond},
			{false, false, true, 200 * time.Millisecond},
			{false, true, false, 5 * time.Second},
		}},
		{"rises after 2 successes", false, []step{
			{true, false, false, 200 * time.Millisecond},
			{true, true, true, 2 * time.Second},
		}},
		{"flapping while down stays down", false, []step{
			{true, false, false, 200 * time.Millisecond},
			{false, false, false, 5 * time.Second},
			{true, false, false, 200 * time.Millisecond},
			{true, true, true, 2 * time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Machine{Up: tt.start}
			for i, s := range tt.steps {
				flip := h.Observe(s.ok, ck)
				if flip != s.flip || h.Up != s.up || h.Next(ck) != s.nextInt {
					t.Fatalf("step %d (ok=%v): flip=%v up=%v next=%v; want %v %v %v",
						i, s.ok, flip, h.Up, h.Next(ck), s.flip, s.up, s.nextInt)
				}
			}
		})
	}
}

func TestCheckDefaults(t *testing.T) {
	c := (&Check{Type: CheckTCP}).WithDefaults()
	if c.Interval != 2*time.Second || c.FastInterval != c.Interval || c.DownInterval != c.Interval ||
		c.Rise != 2 || c.Fall != 3 || c.Timeout != 2*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}
