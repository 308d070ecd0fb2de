package gitrepo

import "testing"

// TestCoalescedHeadline: a burst folded into one commit is titled by its
// most important event, and keeps the last message's trailers.
func TestCoalescedHeadline(t *testing.T) {
	for _, tc := range []struct {
		subjects []string
		want     string
	}{
		{[]string{"status(gw1): a converged", "drift(gw1): sysctl x changed outside gitgw; corrected", "status(gw1): a converged"},
			"drift(gw1): sysctl x changed outside gitgw; corrected (+2 more)"},
		{[]string{"held(gw1): b waits for gw2", "apply(gw1): b, 1 change"}, "apply(gw1): b, 1 change (+1 more)"},
		{[]string{"apply(gw1): b, 1 change", "error(gw1): c rejected: site.cue:1:1 x"}, "error(gw1): c rejected: site.cue:1:1 x (+1 more)"},
		{[]string{"status(gw1): a", "status(gw1): b"}, "status(gw1): b (+1 more)"},
	} {
		var msgs []Message
		for i, s := range tc.subjects {
			msgs = append(msgs, Message{Subject: s, Applied: string(rune('a' + i))})
		}
		got := coalesced(msgs)
		if got.Subject != tc.want {
			t.Errorf("subject = %q, want %q", got.Subject, tc.want)
		}
		if got.Applied != msgs[len(msgs)-1].Applied {
			t.Errorf("trailers from %q, want the last message's", got.Applied)
		}
	}
}
