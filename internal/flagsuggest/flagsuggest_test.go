package flagsuggest

import (
	"testing"

	"github.com/spf13/pflag"
)

func TestClosest(t *testing.T) {
	fs := pflag.NewFlagSet("plan", pflag.ContinueOnError)
	for _, n := range []string{"node", "no-color", "site", "status-repo", "status-branch-prefix", "detailed-exitcode"} {
		fs.String(n, "", "")
	}
	fs.String("eval-timeout", "", "")
	_ = fs.MarkHidden("eval-timeout")
	for name, want := range map[string]string{
		"nod":          "node",              // one edit
		"stie":         "site",              // two edits
		"detailed":     "detailed-exitcode", // the only flag it is a prefix of
		"status":       "",                  // a prefix of two: no guess
		"eval-timeout": "",                  // hidden flags are not suggested
		"xyzzy":        "",
	} {
		if got := Closest(fs, name); got != want {
			t.Errorf("Closest(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"node", "node", 0}, {"nod", "node", 1}, {"stie", "site", 2}, {"", "abc", 3}, {"kitten", "sitting", 3},
	} {
		if got := EditDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("EditDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
