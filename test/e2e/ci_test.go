package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/test/gitremote"
)

// dupVRID adds to the lab site a second VRRP instance with VI_1's VRID on
// the same segment, and returns the line of its vrid field.
func dupVRID(site string) (string, int) {
	if !strings.HasSuffix(site, "\n") {
		site += "\n"
	}
	line := strings.Count(site, "\n") + 4
	return site + `
vrrp: VI_2: {
	interface: "eth0"
	vrid:      51
	nodes: {gw1: priority: 100, gw2: priority: 150}
	vips: ["203.0.113.101/24"]
}
`, line
}

// TestPreReceiveHook runs examples/ci/pre-receive as the hook of a real
// bare repository, with the gitgw under test on its PATH: a push of a
// valid site to main is accepted; a push that breaks a guardrail (one VRID
// twice on a segment) is refused with the positioned error in the pusher's
// output, and main does not move; the same commit pushed to another branch
// is accepted (only the tracked branch is checked); with gitgw.branch set,
// that branch is the one checked.
func TestPreReceiveHook(t *testing.T) {
	gitremote.RequireGit(t)
	r := gitremote.NewBare(t)
	hook, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "ci", "pre-receive"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "hooks", "pre-receive"), hook, 0o755); err != nil {
		t.Fatal(err)
	}
	path := "PATH=" + filepath.Dir(gitgwBin) + string(os.PathListSeparator) + os.Getenv("PATH")

	good := r.Prepare(t, "main", labFiles(t, nil), "lab site")
	if out, err := r.TryPush(t, "main", path); err != nil {
		t.Fatalf("push of a valid site refused: %v\n%s", err, out)
	}
	if h := r.Head(t, "main"); h != good {
		t.Fatalf("main at %s after an accepted push, want %s", h, good)
	}

	var line int
	bad := r.Prepare(t, "main", labFiles(t, func(s string) string {
		s, line = dupVRID(s)
		return s
	}), "second instance, same VRID")
	out, err := r.TryPush(t, "main", path)
	want := fmt.Sprintf("remote: site.cue:%d:13: vrrp.VI_2.vrid: [vrid-unique] VRID 51 (IPv4) is also instance VI_1's on segment 203.0.113.0/24 on eth0", line)
	if err == nil || !strings.Contains(out, want) || !strings.Contains(out, "remote: gitgw: push to main refused") {
		t.Errorf("push of a guardrail violation: err %v, want refused with\n%s\ngot:\n%s", err, want, out)
	}
	if h := r.Head(t, "main"); h != good {
		t.Errorf("main moved to %s after a refused push, want %s", h, good)
	}
	if strings.Contains(out, "gitgw-pre-receive.") {
		t.Errorf("the refusal names the hook's temporary directory:\n%s", out)
	}

	// Not the tracked branch: accepted as it is.
	if out, err := r.TryPush(t, "wip", path); err != nil || r.Head(t, "wip") != bad {
		t.Errorf("push to wip: err %v, head %s, want %s\n%s", err, r.Head(t, "wip"), bad, out)
	}

	// The agents track prod: main is free, prod is checked.
	if out, err := gitremote.Git(r.Dir, "config", "gitgw.branch", "prod"); err != nil {
		t.Fatal(err, out)
	}
	if out, err := r.TryPush(t, "main", path); err != nil || r.Head(t, "main") != bad {
		t.Errorf("push to main with gitgw.branch=prod: err %v\n%s", err, out)
	}
	if out, err := r.TryPush(t, "prod", path); err == nil || !strings.Contains(out, want) || r.Head(t, "prod") != "" {
		t.Errorf("push of a guardrail violation to prod: err %v, head %q\n%s", err, r.Head(t, "prod"), out)
	}

	// A site in a subdirectory of the repository (gitgw.path).
	if out, err := gitremote.Git(r.Dir, "config", "gitgw.path", "site"); err != nil {
		t.Fatal(err, out)
	}
	inSite := func(files map[string]string) map[string]string {
		out := map[string]string{"README": "the site is in site/\n"}
		for k, v := range files {
			out["site/"+k] = v
		}
		return out
	}
	r.Prepare(t, "prod", inSite(labFiles(t, nil)), "lab site in site/")
	if out, err := r.TryPush(t, "prod", path); err != nil {
		t.Errorf("push of a valid site in site/: %v\n%s", err, out)
	}
	r.Prepare(t, "prod", inSite(labFiles(t, func(s string) string { s, _ = dupVRID(s); return s })), "same VRID, in site/")
	if out, err := r.TryPush(t, "prod", path); err == nil || !strings.Contains(out, "vrrp.VI_2.vrid: [vrid-unique]") {
		t.Errorf("push of a guardrail violation in site/: err %v\n%s", err, out)
	}
}

// ciTemplate parses a YAML template of examples/ci (through CUE's YAML
// parser: cue/loader is the only importer of CUE) into plain values.
func ciTemplate(t *testing.T, name string) map[string]any {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "ci", name))
	if err != nil {
		t.Fatal(err)
	}
	js, err := loader.YAMLToJSON(name, src)
	if err != nil {
		t.Fatalf("%s is not valid YAML: %v", name, err)
	}
	var v map[string]any
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// ciClone is what a CI runner checks out for a merge request: a clone of
// the site repository, detached at the proposed commit, with no local
// branch. It returns the clone.
func ciClone(t *testing.T, r *gitremote.Repo, commit string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ci")
	for _, args := range [][]string{
		{"clone", "-q", r.Dir, dir},
		{"-C", dir, "checkout", "-q", "--detach", commit},
		{"-C", dir, "branch", "-q", "-D", "main"},
	} {
		if out, err := gitremote.Git("", args...); err != nil {
			t.Fatal(err, out)
		}
	}
	return dir
}

// runScript runs a template's shell lines in dir as the CI runner would,
// with the template's variables and gitgw on PATH.
func runScript(t *testing.T, dir string, vars map[string]string, lines ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", "-e", "-c", strings.Join(lines, "\n"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(gitgwBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// ciRepo is a site repository as the agents leave it: the lab site applied
// on main by both nodes (status branches), and a proposed commit that moves
// a server (or, with bad, breaks a guardrail) on a branch of its own.
func ciRepo(t *testing.T, bad bool) (*gitremote.Repo, string) {
	t.Helper()
	r := gitremote.NewBare(t)
	applied := r.Commit(t, "main", labFiles(t, nil), "lab site")
	fastImport(t, r.Dir, map[string]string{"gw1": labStatus("gw1", applied, false), "gw2": labStatus("gw2", applied, false)})
	proposed := r.Commit(t, "proposal", labFiles(t, func(s string) string {
		if bad {
			s, _ = dupVRID(s)
			return s
		}
		return strings.Replace(s, `s2: address: "198.51.100.12:8080"`, `s2: address: "198.51.100.22:8080"`, 1)
	}), "proposal")
	return r, proposed
}

// checkPlanned: the template's plan names both nodes' change, table first.
func checkPlanned(t *testing.T, name, out string) {
	t.Helper()
	for _, want := range []string{"| gw1 | 0 | 1 | 0 |", "| gw2 | 0 | 1 | 0 |", "### gw1", "~ proxy_server web/s2: 198.51.100.12:8080 → 198.51.100.22:8080"} {
		if !strings.Contains(out, want) {
			t.Errorf("%s: the plan lacks %q:\n%s", name, want, out)
		}
	}
}

// TestGitHubActionsTemplate runs the shell steps of
// examples/ci/github-actions.yml (all but the install and the comment) in
// a clone checked out as for a pull request: the plan compares each node
// with the commit it reports applied, and a broken guardrail fails the
// validate step with the positioned error.
func TestGitHubActionsTemplate(t *testing.T) {
	gitremote.RequireGit(t)
	wf := ciTemplate(t, "github-actions.yml")
	vars := map[string]string{}
	for k, v := range wf["env"].(map[string]any) {
		vars[k] = fmt.Sprint(v)
	}
	steps := map[string]string{}
	for _, s := range wf["jobs"].(map[string]any)["plan"].(map[string]any)["steps"].([]any) {
		s := s.(map[string]any)
		if name, ok := s["name"].(string); ok && s["run"] != nil {
			steps[name] = s["run"].(string)
		}
	}
	fetch, validate, plan := steps["Fetch the tracked branch and the nodes' status branches"], steps["Validate"], steps["Plan every node"]
	if fetch == "" || !strings.Contains(validate, "gitgw validate") || !strings.Contains(plan, "--all-nodes --observed status") {
		t.Fatalf("steps: %q", steps)
	}
	for _, bad := range []bool{false, true} {
		r, proposed := ciRepo(t, bad)
		dir := ciClone(t, r, proposed)
		summary := filepath.Join(t.TempDir(), "summary.md")
		vars["GITHUB_STEP_SUMMARY"] = summary
		out, code := runScript(t, dir, vars, fetch, validate)
		if bad {
			if code != 1 || !strings.Contains(out, "vrrp.VI_2.vrid: [vrid-unique]") {
				t.Errorf("validate of a broken guardrail: exit %d\n%s", code, out)
			}
			continue
		}
		if code != 0 {
			t.Fatalf("validate: exit %d\n%s", code, out)
		}
		if out, code := runScript(t, dir, vars, plan); code != 0 {
			t.Fatalf("plan step: exit %d\n%s", code, out)
		}
		md, err := os.ReadFile(summary)
		if err != nil {
			t.Fatal(err)
		}
		checkPlanned(t, "github-actions.yml", string(md))
	}
}

// TestGitLabCITemplate runs the scripts of examples/ci/gitlab-ci.yml (but
// the install) in a clone checked out as for a merge request, without a
// comment token: the plan job passes with plan.md, and a broken guardrail
// fails the validate job with the positioned error.
func TestGitLabCITemplate(t *testing.T) {
	gitremote.RequireGit(t)
	ci := ciTemplate(t, "gitlab-ci.yml")
	vars := map[string]string{}
	for k, v := range ci["variables"].(map[string]any) {
		vars[k] = fmt.Sprint(v)
	}
	script := func(job string) []string {
		var out []string
		for _, l := range ci[job].(map[string]any)["script"].([]any) {
			out = append(out, l.(string))
		}
		return out
	}
	validate, plan := script("validate"), script("plan")
	if !strings.Contains(strings.Join(validate, "\n"), "gitgw validate") || !strings.Contains(strings.Join(plan, "\n"), "--all-nodes --observed status") {
		t.Fatalf("scripts: %q %q", validate, plan)
	}
	for _, bad := range []bool{false, true} {
		r, proposed := ciRepo(t, bad)
		dir := ciClone(t, r, proposed)
		out, code := runScript(t, dir, vars, validate...)
		if bad {
			if code != 1 || !strings.Contains(out, "vrrp.VI_2.vrid: [vrid-unique]") {
				t.Errorf("validate of a broken guardrail: exit %d\n%s", code, out)
			}
			continue
		}
		if code != 0 {
			t.Fatalf("validate: exit %d\n%s", code, out)
		}
		if out, code := runScript(t, dir, vars, plan...); code != 0 {
			t.Fatalf("plan job: exit %d\n%s", code, out)
		}
		md, err := os.ReadFile(filepath.Join(dir, "plan.md"))
		if err != nil {
			t.Fatal(err)
		}
		checkPlanned(t, "gitlab-ci.yml", string(md))
	}
}
