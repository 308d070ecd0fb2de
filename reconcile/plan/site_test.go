package plan

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/gitgw/gitgw/test/goldenfile"
)

// sampleSite is three nodes: one with changes, its peer that waits for it
// with none, and one whose only resource is pending.
func sampleSite() *Site {
	changed := samplePlan()
	changed.Notes = append(changed.Notes, "a unit file that quotes ``` in a comment")
	quiet := &Plan{Node: "server-2", Commit: changed.Commit, Changes: []Change{
		{Driver: "tuning", Kind: "sysctl", ID: "net.ipv4.ip_forward", Action: NoOp, After: "1"},
		{Driver: "vrrp", Kind: "vrrp_instance", ID: "EX_1", Action: NoOp, After: map[string]any{"vrid": 11, "priority": 90}},
	}}
	pending := &Plan{Node: "edge|1", Commit: changed.Commit, Changes: []Change{
		{Driver: "units", Kind: "unit_instance", ID: "app@`8080`.service", Action: Pending, After: "active", Reason: "driver unavailable: no systemd"},
	}}
	return &Site{Commit: changed.Commit, Plans: []*Plan{pending, changed, quiet},
		WaitsFor: map[string][]string{"server-2": {"server-1"}}}
}

// TestSiteRenderGolden pins the all-node renderings: the text with its
// summary table, the markdown of a review comment (table first, a heading
// and a fenced plan per node that changes, cells and fences escaped), and
// the JSON document.
func TestSiteRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		render func(*bytes.Buffer, *Site) error
	}{
		{"site-text", func(b *bytes.Buffer, s *Site) error { return WriteSiteText(b, s, TextOptions{}) }},
		{"site-markdown", func(b *bytes.Buffer, s *Site) error { return WriteSiteMarkdown(b, s, MarkdownOptions{}) }},
		{"site-markdown-limited", func(b *bytes.Buffer, s *Site) error {
			// Room for the table, not for server-1's plan.
			return WriteSiteMarkdown(b, s, MarkdownOptions{MaxBytes: 800})
		}},
		{"site-json", func(b *bytes.Buffer, s *Site) error { return WriteSiteJSON(b, s) }},
		{"site-empty-markdown", func(b *bytes.Buffer, _ *Site) error {
			return WriteSiteMarkdown(b, &Site{Plans: []*Plan{{Node: "gw1"}, {Node: "gw2"}}}, MarkdownOptions{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.render(&b, sampleSite()); err != nil {
				t.Fatal(err)
			}
			goldenfile.Check(t, filepath.Join("testdata", tc.name+".golden"), b.Bytes())
		})
	}
}

func TestSiteHasChanges(t *testing.T) {
	s := sampleSite()
	if !s.HasChanges() {
		t.Error("a site with one changing node reports no changes")
	}
	s.Plans = s.Plans[2:]
	if s.HasChanges() {
		t.Error("a site whose nodes have only no-ops reports changes")
	}
}
