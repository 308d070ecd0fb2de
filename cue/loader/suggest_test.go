package loader

import "testing"

func TestClosest(t *testing.T) {
	names := []string{"preempt", "preempt_delay", "priority", "balance", "binds", "addresses"}
	for _, c := range []struct{ bad, want string }{
		{"premept", "preempt"},    // two neighbours swapped
		{"balanse", "balance"},    // one letter wrong
		{"adresses", "addresses"}, // one letter missing
		{"bind", "binds"},
		{"weight", ""}, // nothing close: no guess
		{"pr", ""},
	} {
		if got := closest(c.bad, names); got != c.want {
			t.Errorf("closest(%q) = %q, want %q", c.bad, got, c.want)
		}
	}
}
