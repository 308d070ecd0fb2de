// Package packaging holds the agent's systemd unit and its settings file;
// its tests check them with systemd's own tools and against the binary.
package packaging

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/lab"
)

// maxExposure is the highest `systemd-analyze security` exposure the unit
// may have (the README quotes the figure; 2.7 when written).
const maxExposure = 3.0

// gitgwBin is built once by TestMain (not with -short).
var gitgwBin string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if testing.Short() {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "gitgw-packaging-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		gitgwBin = filepath.Join(dir, "gitgw")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", gitgwBin, "../cmd/gitgw").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build gitgw: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func buildGitgw(t *testing.T) string {
	t.Helper()
	if gitgwBin == "" {
		t.Fatal("gitgw not built (TestMain)")
	}
	return gitgwBin
}

// installed writes the unit as `make install` would, with the binary and
// the settings file at temporary paths.
func installed(t *testing.T, bin string) string {
	t.Helper()
	unit, err := os.ReadFile("gitgw.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := filepath.Join(dir, "agent.env")
	if err := os.WriteFile(env, mustRead(t, "agent.env"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(unit), "/usr/local/bin/gitgw", bin)
	s = strings.ReplaceAll(s, "/etc/gitgw/agent.env", env)
	path := filepath.Join(dir, "gitgw.service")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnitVerifies(t *testing.T) {
	lab.SkipShort(t, "builds the binary")
	lab.RequireCommand(t, "systemd-analyze")
	path := installed(t, buildGitgw(t))
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for gitgw\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f", level)
	if level > maxExposure {
		t.Errorf("exposure %.1f > %.1f:\n%s", level, maxExposure, out)
	}
}

// TestUnitDirectives pins what the agent relies on in its unit.
func TestUnitDirectives(t *testing.T) {
	got := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(mustRead(t, "gitgw.service")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			got[k] = append(got[k], v)
		}
	}
	for _, tc := range []struct{ key, want string }{
		{"Type", "notify"},
		{"WatchdogSec", "30s"},
		{"Restart", "on-failure"},
		{"StateDirectory", "gitgw"},
		{"RuntimeDirectory", "gitgw"},
		{"RuntimeDirectoryMode", "0750"}, // the control socket's directory
		{"ExecStopPost", "/usr/local/bin/gitgw vrrp release --state-dir /var/lib/gitgw"},
		// Listeners and the established connections of a restart (two
		// sockets each); FDSTORE tells the agent the same size.
		{"FileDescriptorStoreMax", "65536"},
		{"Environment", "FDSTORE=65536"},
		// The guardian must outlive the crash it hands over: mixed SIGKILLs it.
		{"KillMode", "control-group"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ReadWritePaths", "/etc/systemd/system"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"CapabilityBoundingSet", "CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE"},
		{"ProtectKernelTunables", "no"},
	} {
		if !strings.Contains(strings.Join(got[tc.key], "\n"), tc.want) {
			t.Errorf("%s=%q, want %q", tc.key, got[tc.key], tc.want)
		}
	}
}

// TestAgentEnvFlags checks that every flag the settings file passes is a
// flag of `gitgw agent`.
func TestAgentEnvFlags(t *testing.T) {
	lab.SkipShort(t, "builds the binary")
	help, err := exec.Command(buildGitgw(t), "agent", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("gitgw agent --help: %v\n%s", err, help)
	}
	var flags []string
	for _, line := range strings.Split(string(mustRead(t, "agent.env")), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			line = strings.TrimSpace(strings.TrimPrefix(line, "#"))
			if !strings.HasPrefix(line, "--") {
				continue
			}
		}
		for _, f := range strings.Fields(line) {
			for _, part := range strings.Split(f, "/") {
				part = strings.TrimSpace(part)
				if strings.HasPrefix(part, "--") {
					flags = append(flags, part)
				}
			}
		}
	}
	if len(flags) < 5 {
		t.Fatalf("found only %v in agent.env", flags)
	}
	for _, f := range flags {
		if !strings.Contains(string(help), "  "+f+" ") && !strings.Contains(string(help), ", "+f+" ") {
			t.Errorf("agent.env names %s, which gitgw agent does not have", f)
		}
	}
	if !strings.Contains(string(mustRead(t, "gitgw.service")), "--repo ${GITGW_REPO}") {
		t.Error("the unit does not pass GITGW_REPO")
	}
}

// TestAgentEnvShowsVerification: the settings file shows how to turn
// signature verification on, with either kind of key (the flag names are
// checked against the binary by TestAgentEnvFlags).
func TestAgentEnvShowsVerification(t *testing.T) {
	env := string(mustRead(t, "agent.env"))
	for _, keys := range []string{"--allowed-signers /etc/gitgw/", "--trusted-keys /etc/gitgw/"} {
		if !regexp.MustCompile(`(?m)^#\s+--verify-signatures strict ` + regexp.QuoteMeta(keys)).MatchString(env) {
			t.Errorf("agent.env has no example line `# --verify-signatures strict %s...`", keys)
		}
	}
}

// TestMakeInstall runs `make install` into a DESTDIR.
func TestMakeInstall(t *testing.T) {
	lab.SkipShort(t, "builds the binary")
	lab.RequireCommand(t, "make")
	dest := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-C", "..", "install", "DESTDIR="+dest, "BIN="+filepath.Join(t.TempDir(), "gitgw"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/local/bin/gitgw", "etc/systemd/system/gitgw.service", "etc/gitgw/agent.env.example"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
}
