package spec

import (
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for s, want := range map[string][2]int64{
		"100/s": {100, int64(time.Second)}, "600/m": {600, int64(time.Minute)},
		"1/h": {1, int64(time.Hour)}, "50/10s": {50, int64(10 * time.Second)},
	} {
		n, per, err := ParseRate(s)
		if err != nil || int64(n) != want[0] || int64(per) != want[1] {
			t.Errorf("%q: %d/%v %v", s, n, per, err)
		}
	}
	for _, s := range []string{"", "100", "0/s", "-1/s", "x/s", "10/", "10/d", "10/-1s", "2000000000/ns"} {
		if _, _, err := ParseRate(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
}
