package drift

import "testing"

func TestEventTag(t *testing.T) {
	for _, tc := range []struct {
		ev   Event
		want string
	}{
		{Event{Driver: "vrrp", Kind: "transition", Message: "VI_1 BACKUP -> MASTER (master down timer expired)"}, "failover"},
		{Event{Driver: "vrrp", Kind: "transition", Message: "VI_1 INIT -> BACKUP (start)"}, "vrrp"},
		{Event{Driver: "units", Kind: "drift", Message: "app@8080.service stopped"}, "drift"},
		{Event{Driver: "proxy", Kind: "health", Message: "web/s1 down"}, "health"},
	} {
		if got := eventTag(tc.ev); got != tc.want {
			t.Errorf("eventTag(%q) = %q, want %q", tc.ev.Message, got, tc.want)
		}
	}
}
