package loader

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestViewsMatchNodeLoads: the views derived from one whole-site load are
// the views a node's own load decodes, for every node of the example sites,
// so that `plan --all-nodes` plans what each agent would.
func TestViewsMatchNodeLoads(t *testing.T) {
	ctx := context.Background()
	for _, dir := range []string{"../../examples/lab", "../../examples/seed-site", "../../examples/demo"} {
		site, _, err := Load(ctx, dir, "")
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		views, err := site.Views()
		if err != nil {
			t.Fatalf("%s: views: %v", dir, err)
		}
		if len(views) != len(site.Nodes) || len(views) == 0 {
			t.Fatalf("%s: %d views for nodes %v", dir, len(views), site.Nodes)
		}
		for _, node := range site.Nodes {
			_, want, err := LoadWith(ctx, dir, node, Options{Scope: ScopeSite})
			if err != nil {
				t.Fatalf("%s %s: %v", dir, node, err)
			}
			wj, _ := json.MarshalIndent(want, "", " ")
			gj, _ := json.MarshalIndent(views[node], "", " ")
			if d := cmp.Diff(string(wj), string(gj)); d != "" {
				t.Errorf("%s %s: view from the whole site differs (-node load +derived):\n%s", dir, node, d)
			}
		}
	}
}
