// Package systemd starts a real systemd as PID 1 in throwaway namespaces so
// that gitgw's units driver (and the agent end to end) can be tested against
// the real thing without touching the host's service manager.
//
// The namespaced systemd gets new pid, mount, uts, ipc and cgroup namespaces
// (and a network namespace of its own, or a lab one), private tmpfs mounts on
// /run, /tmp, /var/tmp, /etc/systemd and /var/lib/systemd, a private /dev, a
// read-only view of / and of the global /proc knobs, and a unit path that
// holds only the harness's stub targets and the units under test. Without
// the private /tmp its tmpfiles service would wipe the host's /tmp
// (reference/units-nic.md §A.2, §C).
//
// The host talks to it through Socket(), a socket-activated
// systemd-socket-proxyd in front of /run/systemd/private: systemd refuses
// private-socket peers whose pid it cannot see, so the proxy lives inside.
// Commands run inside through nsenter (Command, Run, Systemctl); never run a
// plain systemctl against the host.
//
// Use, in a test (one harness per test, stopped by t.Cleanup):
//
//	h := systemd.New(t, systemd.Options{Name: "e2e", Netns: ns.Path()})
//	os.WriteFile(filepath.Join(h.UnitDir, "gitgw.service"), unit, 0o644)
//	h.MustSystemctl(t, "daemon-reload")
//	h.MustSystemctl(t, "start", "gitgw.service")
//	conn, _ := units.Dial(ctx, h.Socket()) // host-side D-Bus
//
// or once per package from TestMain with Start and Stop. Binaries a unit
// runs must live where the harness sees them: under h.StateDir (visible at
// the same path inside; /tmp is private there) or in a directory listed in
// Options.RW. Services write to h.Log() (there is no journald).
package systemd

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

//go:embed launcher.sh
var launcher []byte

// Options configure one harness. The zero value is usable.
type Options struct {
	// Name is a prefix for the instance name; a random suffix is added.
	Name string
	// StateDir is the host directory that holds the harness's files (pid,
	// console.log, base units, bus.sock). It is visible at the same path
	// inside. Default: /run/gitgw-systemd/<name>.
	StateDir string
	// UnitDir holds the units under test; it is on the unit path and is
	// visible and writable at the same path inside. Default: StateDir/units.
	UnitDir string
	// RW lists extra host directories that stay writable inside (a GOCACHE,
	// a binary directory). Everything else on / is read-only inside.
	RW []string
	// Overlay lists host directories (/usr, /etc, /var/lib, ...) that get a
	// private writable layer inside: writes land in the namespace's /run
	// and vanish with it. A test installs a Debian package this way
	// without touching the host.
	Overlay []string
	// Netns is the path of a network namespace to run in (/run/netns/NAME,
	// e.g. a lab.Netns). Empty: a new network namespace with only lo.
	Netns string
	// SystemConf are extra lines for the [Manager] section of system.conf,
	// e.g. "DefaultStartLimitBurst=100".
	SystemConf []string
	// Timeout bounds the boot (default 60 s: CI boxes are loaded).
	Timeout time.Duration
	// LogLevel is systemd's log level (default "info").
	LogLevel string
	// SystemBus also runs a dbus-daemon system bus inside (dbus.socket,
	// dbus.service), reachable from the host at SystemBusSocket(): the
	// production path, where signals need Subscribe().
	SystemBus bool
}

// Systemd is one running namespaced systemd.
type Systemd struct {
	Name     string
	StateDir string
	UnitDir  string
	// PID is systemd's pid as seen from the host.
	PID int

	cgroup    string
	origCg    string
	systemBus bool
	netns     bool
	cmd       *exec.Cmd
	waitErr   chan error
	console   *os.File
	logDone   chan struct{}
	stopOnce  sync.Once
	stopErr   error
}

// baseUnits are the stub targets systemd needs to boot and to satisfy the
// default dependencies of services and sockets, plus the bus proxy.
var baseTargets = []string{
	"multi-user.target", "basic.target", "sysinit.target", "sockets.target",
	"timers.target", "paths.target", "slices.target", "shutdown.target",
	"local-fs.target", "local-fs-pre.target", "remote-fs.target", "swap.target",
	"umount.target", "network.target", "network-pre.target", "network-online.target",
	"nss-lookup.target", "nss-user-lookup.target", "time-sync.target",
	"emergency.target", "rescue.target", "final.target", "graphical.target",
	"cryptsetup.target", "getty.target",
}

// Start boots a namespaced systemd and returns once it reports "running" or
// "degraded" and its bus socket accepts connections. On error nothing is
// left behind.
func Start(ctx context.Context, o Options) (_ *Systemd, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("systemd harness: needs root")
	}
	for _, p := range []string{"/lib/systemd/systemd", "/lib/systemd/systemd-socket-proxyd"} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("systemd harness: %w", err)
		}
	}
	for _, c := range []string{"unshare", "nsenter", "mount", "mknod"} {
		if _, err := exec.LookPath(c); err != nil {
			return nil, fmt.Errorf("systemd harness: %w", err)
		}
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	sweep()
	name := unique(cmpOr(o.Name, "sd"))
	s := &Systemd{
		Name:     name,
		StateDir: cmpOr(o.StateDir, filepath.Join("/run/gitgw-systemd", name)),
		netns:    o.Netns == "",
		waitErr:  make(chan error, 1),
		logDone:  make(chan struct{}),
	}
	s.UnitDir = cmpOr(o.UnitDir, filepath.Join(s.StateDir, "units"))
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	for _, d := range []string{s.StateDir, s.UnitDir, filepath.Join(s.StateDir, "base"), filepath.Join(s.StateDir, "empty")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("systemd harness: %w", err)
		}
	}
	s.systemBus = o.SystemBus
	if err := s.writeBase(); err != nil {
		return nil, err
	}
	if err := s.makeCgroup(); err != nil {
		return nil, err
	}
	if err := s.launch(o); err != nil {
		return nil, err
	}
	bootCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := s.waitRunning(bootCtx); err != nil {
		return nil, fmt.Errorf("systemd harness %s: boot: %w\n--- console ---\n%s", name, err, tail(s.Log(), 4000))
	}
	// The launcher (unshare) stays in the harness cgroup only until boot;
	// move it back so the subtree holds nothing but the namespace.
	if s.origCg != "" && s.cmd.Process != nil {
		_ = os.WriteFile(filepath.Join(s.origCg, "cgroup.procs"), []byte(strconv.Itoa(s.cmd.Process.Pid)), 0o644)
	}
	return s, nil
}

func (s *Systemd) writeBase() error {
	base := filepath.Join(s.StateDir, "base")
	files := map[string]string{}
	for _, t := range baseTargets {
		files[t] = "[Unit]\nDescription=harness stub " + t + "\n"
	}
	files["multi-user.target"] = "[Unit]\nDescription=harness multi-user\nWants=gitgw-harness-bus.socket\n"
	files["gitgw-harness-bus.socket"] = "[Unit]\nDescription=harness bus proxy socket\n\n[Socket]\nListenStream=" +
		s.Socket() + "\nSocketMode=0600\nRemoveOnStop=yes\n"
	files["gitgw-harness-bus.service"] = "[Unit]\nDescription=harness bus proxy\n\n[Service]\n" +
		"ExecStart=/lib/systemd/systemd-socket-proxyd /run/systemd/private\n"
	if s.systemBus {
		files["multi-user.target"] += "Wants=dbus.socket gitgw-harness-sysbus.socket\n"
		files["dbus.socket"] = "[Unit]\nDescription=harness system bus socket\n\n[Socket]\nListenStream=/run/dbus/system_bus_socket\n"
		files["dbus.service"] = "[Unit]\nDescription=harness system bus\nRequires=dbus.socket\n\n[Service]\nType=notify\nNotifyAccess=main\n" +
			"ExecStart=/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only\n"
		files["gitgw-harness-sysbus.socket"] = "[Unit]\nDescription=harness system bus proxy socket\n\n[Socket]\nListenStream=" +
			s.SystemBusSocket() + "\nSocketMode=0600\nRemoveOnStop=yes\n"
		files["gitgw-harness-sysbus.service"] = "[Unit]\nDescription=harness system bus proxy\nRequires=dbus.socket\nAfter=dbus.socket\n\n[Service]\n" +
			"ExecStart=/lib/systemd/systemd-socket-proxyd /run/dbus/system_bus_socket\n"
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(base, n), []byte(c), 0o644); err != nil {
			return fmt.Errorf("systemd harness: write %s: %w", n, err)
		}
	}
	_ = os.Remove(filepath.Join(base, "default.target"))
	if err := os.Symlink("multi-user.target", filepath.Join(base, "default.target")); err != nil {
		return fmt.Errorf("systemd harness: %w", err)
	}
	return os.WriteFile(filepath.Join(s.StateDir, "launcher.sh"), launcher, 0o755)
}

// makeCgroup creates the cgroup2 subtree the namespace lives in, a child of
// the caller's own cgroup2.
func (s *Systemd) makeCgroup() error {
	mnt, err := cgroup2Mount()
	if err != nil {
		return fmt.Errorf("systemd harness: %w", err)
	}
	own, err := ownCgroup2()
	if err != nil {
		return fmt.Errorf("systemd harness: %w", err)
	}
	s.origCg = filepath.Join(mnt, own)
	s.cgroup = filepath.Join(s.origCg, "gitgw-sd-"+s.Name)
	if err := os.Mkdir(s.cgroup, 0o755); err != nil {
		s.cgroup = ""
		return fmt.Errorf("systemd harness: create cgroup: %w", err)
	}
	return os.WriteFile(filepath.Join(s.StateDir, "cgroup"), []byte(s.cgroup), 0o644)
}

func (s *Systemd) launch(o Options) error {
	ptm, pts, err := openPty()
	if err != nil {
		return fmt.Errorf("systemd harness: pty: %w", err)
	}
	s.console = ptm
	logf, err := os.OpenFile(filepath.Join(s.StateDir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		ptm.Close()
		pts.Close()
		return fmt.Errorf("systemd harness: %w", err)
	}
	go func() {
		defer close(s.logDone)
		defer logf.Close()
		_, _ = io.Copy(logf, ptm)
	}()
	cg, err := os.Open(s.cgroup)
	if err != nil {
		pts.Close()
		return fmt.Errorf("systemd harness: %w", err)
	}
	defer cg.Close()

	var args []string
	if o.Netns != "" {
		args = append(args, "nsenter", "--net="+o.Netns, "--")
	}
	args = append(args, "unshare", "--pid", "--mount", "--uts", "--ipc", "--cgroup",
		"--fork", "--mount-proc", "--propagation", "private", "--kill-child=SIGKILL")
	if o.Netns == "" {
		args = append(args, "--net")
	}
	args = append(args, "/bin/sh", filepath.Join(s.StateDir, "launcher.sh"))
	path, err := exec.LookPath(args[0])
	if err != nil {
		pts.Close()
		return fmt.Errorf("systemd harness: %w", err)
	}
	ownSysfs := "1"
	if o.Netns == "" {
		ownSysfs = "1"
	}
	unitPath := strings.Join([]string{"/etc/systemd/system", "/run/systemd/transient", "/run/systemd/system",
		s.UnitDir, filepath.Join(s.StateDir, "base")}, ":")
	cmd := &exec.Cmd{
		Path: path,
		Args: args,
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"STATE=" + s.StateDir, "UNIT_DIR=" + s.UnitDir, "UNIT_PATH=" + unitPath,
			"RW=" + strings.Join(o.RW, ":"), "OVERLAY=" + strings.Join(o.Overlay, ":"), "OWN_SYSFS=" + ownSysfs,
			"SYSTEM_CONF=" + strings.Join(o.SystemConf, "\n"), "LOG_LEVEL=" + cmpOr(o.LogLevel, "info"),
		},
		Stdin:  pts,
		Stdout: pts,
		Stderr: pts,
		SysProcAttr: &syscall.SysProcAttr{
			Setsid:      true,
			Pdeathsig:   syscall.SIGKILL,
			UseCgroupFD: true,
			CgroupFD:    int(cg.Fd()),
		},
	}
	s.cmd = cmd
	// Pdeathsig fires when the creating *thread* exits: start and wait on a
	// locked thread that lives exactly as long as the launcher.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			s.waitErr <- err
			return
		}
		started <- nil
		s.waitErr <- cmd.Wait()
	}()
	err = <-started
	pts.Close()
	if err != nil {
		s.cmd = nil
		return fmt.Errorf("systemd harness: start unshare: %w", err)
	}
	// unshare --fork: PID 1 is unshare's (or nsenter→unshare's) child.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pid := childOf(cmd.Process.Pid); pid > 0 {
			s.PID = pid
			break
		}
		if time.Now().After(deadline) {
			return errors.New("systemd harness: PID 1 did not appear")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return os.WriteFile(filepath.Join(s.StateDir, "pid"), []byte(strconv.Itoa(s.PID)+"\n"), 0o644)
}

func (s *Systemd) waitRunning(ctx context.Context) error {
	var last string
	for {
		select {
		case err := <-s.waitErr:
			s.waitErr <- err
			return fmt.Errorf("launcher exited: %v", err)
		default:
		}
		out, _ := s.Command(ctx, "systemctl", "is-system-running").Output()
		last = strings.TrimSpace(string(out))
		if last == "running" || last == "degraded" {
			_, err := os.Stat(s.Socket())
			if err == nil && s.systemBus {
				_, err = os.Stat(s.SystemBusSocket())
			}
			if err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("state %q: %w", last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Socket is the host-side path of the proxy in front of systemd's private
// socket. Dial it with the EXTERNAL auth of uid 0 and no Hello().
func (s *Systemd) Socket() string { return filepath.Join(s.StateDir, "bus.sock") }

// SystemBusSocket is the host-side path of a proxy in front of the
// harness's system bus (Options.SystemBus): a bus daemon, so EXTERNAL auth
// then Hello().
func (s *Systemd) SystemBusSocket() string { return filepath.Join(s.StateDir, "system_bus.sock") }

// NetnsPath is the network namespace systemd and its services run in.
func (s *Systemd) NetnsPath() string { return fmt.Sprintf("/proc/%d/ns/net", s.PID) }

// Log returns what PID 1 and the services wrote to the console.
func (s *Systemd) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.StateDir, "console.log"))
	return string(b)
}

// Command returns a command that runs inside every namespace of the harness.
func (s *Systemd) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	ns := []string{"-t", strconv.Itoa(s.PID), "-m", "-p", "-u", "-i", "-C", "-n", "--"}
	cmd := exec.CommandContext(ctx, "nsenter", append(append(ns, name), args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=cat"}
	return cmd
}

// Try runs a command inside and returns its combined output.
func (s *Systemd) Try(ctx context.Context, name string, args ...string) (string, error) {
	out, err := s.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s (in %s): %w: %s", name, strings.Join(args, " "), s.Name, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Systemctl runs systemctl inside the harness (never against the host).
func (s *Systemd) Systemctl(ctx context.Context, args ...string) (string, error) {
	return s.Try(ctx, "systemctl", append([]string{"--no-pager"}, args...)...)
}

// Do runs fn on an OS thread switched into the harness's network
// namespace; sockets opened by fn stay there.
func (s *Systemd) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open(s.NetnsPath())
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("systemd harness: enter netns: %w", err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("systemd harness: leave netns: %w (fn: %v)", err, ferr)
	}
	runtime.UnlockOSThread()
	return ferr
}

// Stop kills the whole namespace (SIGKILL to its PID 1), waits for the
// launcher and removes the cgroup subtree. Idempotent. The state directory
// is removed unless keep is requested through KEEP_SYSTEMD_HARNESS=1.
func (s *Systemd) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Systemd) stop() error {
	var errs []error
	if s.PID > 0 && isNamespaceInit(s.PID) {
		if err := unix.Kill(s.PID, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("systemd harness: kill %d: %w", s.PID, err))
		}
	}
	if s.cmd != nil {
		select {
		case <-s.waitErr:
		case <-time.After(30 * time.Second):
			if s.cmd.Process != nil {
				_ = s.cmd.Process.Kill()
			}
			<-s.waitErr
		}
	}
	if s.console != nil {
		select {
		case <-s.logDone:
		case <-time.After(5 * time.Second):
		}
		s.console.Close()
	}
	if s.cgroup != "" {
		if err := removeCgroup(s.cgroup, 30*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if os.Getenv("KEEP_SYSTEMD_HARNESS") != "1" && strings.HasPrefix(s.StateDir, "/run/gitgw-systemd/") {
		_ = os.RemoveAll(s.StateDir)
	}
	return errors.Join(errs...)
}

// sweep removes what harnesses of crashed test runs left behind under
// /run/gitgw-systemd: state directories and cgroups whose PID 1 is gone
// (the launcher dies with its test process, and unshare --kill-child takes
// the namespace with it). Live harnesses of other packages are left alone.
func sweep() {
	ents, err := os.ReadDir("/run/gitgw-systemd")
	if err != nil {
		return
	}
	for _, e := range ents {
		dir := filepath.Join("/run/gitgw-systemd", e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "pid"))
		if err != nil {
			// Starting right now, or never started: judge by age.
			if st, err := os.Stat(dir); err != nil || time.Since(st.ModTime()) < 10*time.Minute {
				continue
			}
		} else if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 && isNamespaceInit(pid) {
			continue
		}
		if cg, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil && strings.Contains(string(cg), "/gitgw-sd-") {
			_ = removeCgroup(string(cg), time.Second)
		}
		_ = os.RemoveAll(dir)
	}
}

// isNamespaceInit reports whether pid is PID 1 of a child pid namespace,
// so that Stop never signals anything else.
func isNamespaceInit(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f, ok := strings.CutPrefix(sc.Text(), "NSpid:"); ok {
			ids := strings.Fields(f)
			return len(ids) >= 2 && ids[len(ids)-1] == "1"
		}
	}
	return false
}

func removeCgroup(dir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var dirs []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		var last error
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				last = err
			}
		}
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("systemd harness: remove cgroup %s: %w", dir, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func childOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	c, _ := strconv.Atoi(f[0])
	// With nsenter in front, nsenter execs unshare in place, so the child
	// is still unshare's fork; but make sure it is the namespace's init.
	if c > 0 && !isNamespaceInit(c) {
		if cc := childOf(c); cc > 0 {
			return cc
		}
	}
	return c
}

func cgroup2Mount() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		if f := strings.Fields(post); len(f) > 0 && f[0] == "cgroup2" {
			if pf := strings.Fields(pre); len(pf) > 4 {
				return pf[4], nil
			}
		}
	}
	return "", errors.New("no cgroup2 mount")
}

func ownCgroup2() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("no cgroup2 membership in /proc/self/cgroup")
}

func openPty() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, err
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	sl, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, sl, nil
}

func unique(prefix string) string {
	b := make([]byte, 3)
	f, err := os.Open("/dev/urandom")
	if err == nil {
		_, _ = io.ReadFull(f, b)
		f.Close()
	}
	return fmt.Sprintf("%s%x", prefix, b)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Install copies a host file (a binary a unit runs: gitgw, a test server)
// to StateDir/bin/NAME, where the harness sees it at the same path, and
// returns that path.
func (s *Systemd) Install(src, name string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("systemd harness: install %s: %w", src, err)
	}
	dir := filepath.Join(s.StateDir, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("systemd harness: install %s: %w", src, err)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		return "", fmt.Errorf("systemd harness: install %s: %w", src, err)
	}
	return dst, nil
}

// WriteUnit writes a unit file into UnitDir and reloads systemd.
func (s *Systemd) WriteUnit(ctx context.Context, name, content string) error {
	if err := os.WriteFile(filepath.Join(s.UnitDir, name), []byte(content), 0o644); err != nil {
		return fmt.Errorf("systemd harness: write unit %s: %w", name, err)
	}
	_, err := s.Systemctl(ctx, "daemon-reload")
	return err
}
