package gitrepo

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/goldenfile"
	"github.com/google/go-cmp/cmp"
)

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), []byte(got))
}

func TestMessageFormatGolden(t *testing.T) {
	cases := []struct {
		name string
		msg  Message
	}{
		{"apply", Message{Subject: "apply(server-1): 3a9c1e2, 4 changes", Desired: "3a9c1e2", Applied: "3a9c1e2", Drift: "none"}},
		{"drift", Message{
			Subject: "drift(server-1): app@8082.service stopped outside gitgw; restarted",
			Body:    "units: app@8082.service was inactive (dead), want active (running).\nCorrected by starting it.",
			Desired: "3a9c1e2", Applied: "3a9c1e2", Drift: "1 corrected",
		}},
		{"error", Message{
			Subject: "error(server-1): 3a9c1e2 rejected: site.cue:14:5 vrid: invalid value 300",
			Body:    "site.cue:14:5: vrrp.VI_1.vrid: invalid value 300 (out of bound <=255)\nnodes.cue:3:2: nodes.gw3.priority: field is required but not present",
			Desired: "3a9c1e2", Applied: "0b1d2e3", Drift: "none",
		}},
		{"failover-extra-trailer", Message{
			Subject:  "failover(server-1): EX_1 BACKUP -> MASTER (peer silent 360 ms)",
			Trailers: []Trailer{{"Gitgw-Vrrp", "EX_1 MASTER"}},
		}},
		{"coalesced", coalesced([]Message{
			{Subject: "failover(gw1): VI_1 BACKUP -> MASTER"},
			{Subject: "failover(gw1): VI_1 MASTER -> BACKUP"},
			{Subject: "failover(gw1): VI_1 BACKUP -> MASTER", Body: "peer silent 360 ms", Applied: "3a9c1e2"},
		})},
		{"empty-subject", Message{}},
	}
	var b strings.Builder
	for _, c := range cases {
		b.WriteString("=== " + c.name + "\n")
		b.WriteString(c.msg.format("server-1"))
	}
	golden(t, "messages.golden", b.String())
}

func TestCommitTrailers(t *testing.T) {
	cases := []struct {
		name, msg string
		want      Trailers
	}{
		{"subject only", "apply(gw1): x\n", Trailers{}},
		{"subject that looks like a trailer", "Fix: something\n", Trailers{}},
		{"trailers", "s\n\nbody\n\nGitgw-Node: gw1\nGitgw-Drift: 2 open\n", Trailers{"Gitgw-Node": {"gw1"}, "Gitgw-Drift": {"2 open"}}},
		{"repeated key", "s\n\nSigned-off-by: A <a@x>\nSigned-off-by: B <b@x>\n", Trailers{"Signed-off-by": {"A <a@x>", "B <b@x>"}}},
		{"continuation", "s\n\nGitgw-Drift: a\n  b\n", Trailers{"Gitgw-Drift": {"a b"}}},
		{"last paragraph is prose", "s\n\nGitgw-Node: gw1\n\nsome words here\n", Trailers{}},
		{"mixed paragraph", "s\n\nGitgw-Node: gw1\nnot a trailer\n", Trailers{}},
		{"trailing blank lines", "s\n\nK: v\n\n\n", Trailers{"K": {"v"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, CommitTrailers(c.msg)); diff != "" {
				t.Errorf("CommitTrailers(%q) (-want +got):\n%s", c.msg, diff)
			}
		})
	}
	// What format writes, CommitTrailers reads back.
	m := Message{Subject: "s", Body: "b", Desired: "d", Applied: "a", Drift: "none", Trailers: []Trailer{{"X-Y", "z"}}}
	got := CommitTrailers(m.format("gw1"))
	want := Trailers{TrailerNode: {"gw1"}, TrailerDesired: {"d"}, TrailerApplied: {"a"}, TrailerDrift: {"none"}, "X-Y": {"z"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got.Get(TrailerDrift) != "none" || got.Get("Missing") != "" {
		t.Errorf("Get: %v", got)
	}
}

func TestCheckPath(t *testing.T) {
	for _, p := range []string{"status.json", "a/b/c.cue", "cue.mod/module.cue"} {
		if err := checkPath(p); err != nil {
			t.Errorf("checkPath(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", "/abs", "a/../b", "..", ".", "a//b", ".git/config", "x/.GIT/y", "a/"} {
		if err := checkPath(p); err == nil {
			t.Errorf("checkPath(%q) accepted", p)
		}
	}
}

func TestRedact(t *testing.T) {
	if got := redact("https://user:secret@example.com/site.git"); strings.Contains(got, "secret") {
		t.Errorf("redact kept the password: %s", got)
	}
	if got := redact("ssh://git@example.com/site.git"); got != "ssh://git@example.com/site.git" {
		t.Errorf("redact changed %s", got)
	}
}

func TestIsLocal(t *testing.T) {
	for u, want := range map[string]bool{
		"/srv/site.git":                true,
		"file:///srv/site.git":         true,
		"relative/site.git":            true,
		"ssh://git@host/site.git":      false,
		"git@host:site.git":            false,
		"https://example.com/site.git": false,
	} {
		if got := isLocal(u); got != want {
			t.Errorf("isLocal(%q) = %v", u, got)
		}
	}
}

func TestReadFSStaysInside(t *testing.T) {
	root := t.TempDir()
	f := readFS{root: root}
	for name, want := range map[string]string{
		"objects/ab/cd":        root + "/objects/ab/cd",
		"../../etc/passwd":     root + "/etc/passwd",
		"/etc/passwd":          root + "/etc/passwd",
		root + "/refs/heads/x": root + "/refs/heads/x",
		root + "/../outside":   root + "/outside",
		"a/../../b":            root + "/b",
	} {
		if got := f.abs(name); got != want {
			t.Errorf("abs(%q) = %q, want %q", name, got, want)
		}
	}
}
