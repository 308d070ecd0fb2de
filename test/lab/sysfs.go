package lab

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// MountSysfs mounts a fresh sysfs, made from inside namespace n, on a
// temporary directory and returns its path; it is unmounted when the test
// ends. Its class/net lists n's devices, so code with an injectable sysfs
// root can run in-process against them (call it inside n.Do, so that
// /proc/sys/net is n's too). The host's /sys is untouched.
func MountSysfs(t testing.TB, n *Netns) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gitgw-sysfs-")
	if err != nil {
		t.Fatalf("lab: sysfs mountpoint: %v", err)
	}
	if err := n.Do(func() error {
		if err := unix.Mount("sysfs", dir, "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("lab: mount sysfs of %s on %s: %w", n.Name, dir, err)
		}
		return nil
	}); err != nil {
		_ = os.Remove(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("lab: unmount %s: %v", dir, err)
			return
		}
		_ = os.Remove(dir)
	})
	return dir
}
