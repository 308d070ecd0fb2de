package importer

import (
	"context"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/policies"
)

// TestGuardrails: where the configurations state (or let the import infer)
// everything the site needs, the imported site passes the guardrails of
// `gitgw validate` too; seed 003 and seed 004 state no node address, so
// only vip-in-subnet may remain there, pointing at the TODO(import) items.
func TestGuardrails(t *testing.T) {
	for _, tt := range []struct {
		name    string
		allowed map[string]bool // policies that may fail
	}{
		{"seed001", nil},
		{"unicast", nil},
		{"unchecked", map[string]bool{"vip-in-subnet": true}}, // service-health-check accepts unchecked: true
		{"seed003", map[string]bool{"vip-in-subnet": true}},
		{"seed004", map[string]bool{"vip-in-subnet": true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c goldenCase
			for _, g := range goldenCases {
				if g.name == tt.name {
					c = g
				}
			}
			_, dir := c.run(t)
			site, _, err := loader.Load(context.Background(), dir, "")
			if err != nil {
				t.Fatal(err)
			}
			whole, err := site.Whole()
			if err != nil {
				t.Fatal(err)
			}
			bad, _ := policies.Split(policies.Check(policies.FromSite(whole)))
			for _, v := range bad {
				if !tt.allowed[v.Policy] {
					t.Errorf("guardrail: %s", v)
				}
			}
		})
	}
}
