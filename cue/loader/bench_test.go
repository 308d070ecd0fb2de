package loader

import (
	"context"
	"os"
	"testing"
)

// BenchmarkLoadExamples times one load of the example sites as the agent
// and `plan` do it (one node's view) and as `validate` does it (the whole
// site), to show what confinement and the evaluation sandbox cost on the
// normal path: set GITGW_BENCH_SANDBOX=1 to evaluate in a child process.
func BenchmarkLoadExamples(b *testing.B) {
	for _, tc := range []struct{ name, dir, node string }{
		{"lab/gw1", "../../examples/lab", "gw1"},
		{"lab/site", "../../examples/lab", ""},
		{"demo/gw1", "../../examples/demo", "gw1"},
		{"demo/site", "../../examples/demo", ""},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := benchContext(b)
			for b.Loop() {
				if _, _, err := Load(ctx, tc.dir, tc.node); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchContext is the sandbox's context when GITGW_BENCH_SANDBOX=1.
func benchContext(b *testing.B) context.Context {
	if os.Getenv("GITGW_BENCH_SANDBOX") == "1" {
		return WithSandbox(context.Background(), testSandbox(b))
	}
	return context.Background()
}
