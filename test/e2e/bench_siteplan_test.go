package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/gitremote"
)

// BenchmarkPlanAllNodes times `gitgw plan --all-nodes --observed status`
// for a generated site of 50 pairs (100 nodes) whose every node reports the
// previous commit applied, against the single-node plan of the same
// revision: one run for the whole site should cost about one evaluation of
// the site per distinct commit, not one per node.
//
//	go test ./test/e2e -run '^$' -bench PlanAllNodes -benchtime 3x
func BenchmarkPlanAllNodes(b *testing.B) {
	gitremote.RequireGit(b)
	const pairs = 50
	dir := b.TempDir()
	genSite(b, dir, pairs)
	files := map[string]string{}
	if err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = string(body)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	r := gitremote.NewBare(b)
	applied := r.Commit(b, "main", files, "generated site")
	files["common.cue"] += "\nnodes: [_]: tuning: sysctls: \"net.core.somaxconn\": 4096\n"
	r.Commit(b, "main", files, "raise somaxconn")
	statuses := map[string]string{}
	for p := 0; p < pairs; p++ {
		for _, s := range []string{"a", "b"} {
			n := fmt.Sprintf("gw-%05d%s", p, s)
			statuses[n] = labStatus(n, applied, false)
		}
	}
	fastImport(b, r.Dir, statuses)

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"all-100-nodes", []string{"--all-nodes"}},
		{"one-node", []string{"--node", "gw-00000a"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			args := append([]string{"plan", "--repo", r.Dir, "--observed", "status", "--json", "--detailed-exitcode"}, tc.args...)
			var cpu time.Duration
			for b.Loop() {
				cmd := exec.Command(gitgwBin, args...)
				out, err := cmd.CombinedOutput()
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
					b.Fatalf("plan %v: %v (want exit 2: every node changes)\n%s", tc.args, err, out)
				}
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}
