package kernlb

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gitgw/gitgw/test/lab"
	"golang.org/x/sys/unix"
)

// napiThread gives the veth ifname in ns a NAPI thread of its own and
// returns its pid; peer (in peerNS) is the other end of the veth. A veth
// without NAPI hands a packet to its peer in the sender's context, so the
// receiver's work (a gateway's netfilter, routing and forwarding) is
// charged to whoever sent the packet. With GRO on, a veth receives through
// NAPI the packets its peer sends without TSO (a forwarded packet from a
// TSO device is not eligible: veth_skb_is_eligible_for_gro), and with
// threaded NAPI that work runs in a kernel thread per interface
// (napi/<ifname>-<id>), whose CPU /proc reads.
func napiThread(tb testing.TB, ns *lab.Netns, ifname string, peerNS *lab.Netns, peer string) int {
	tb.Helper()
	before := napiPids(ifname)
	if err := ns.Do(func() error { return ethtoolSet(ifname, ethtoolSGRO, 1) }); err != nil {
		tb.Fatalf("GRO on %s in %s: %v", ifname, ns.Name, err)
	}
	if err := peerNS.Do(func() error { return ethtoolSet(peer, ethtoolSTSO, 0) }); err != nil {
		tb.Fatalf("TSO off on %s in %s: %v", peer, peerNS.Name, err)
	}
	ns.Run(tb, "sh", "-c", fmt.Sprintf("echo 1 > /sys/class/net/%s/threaded", ifname))
	deadline := time.Now().Add(5 * time.Second)
	for {
		for pid := range napiPids(ifname) {
			if !before[pid] {
				return pid
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no NAPI thread for %s in %s", ifname, ns.Name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// napiPids are the NAPI threads of interfaces named ifname (in any namespace).
func napiPids(ifname string) map[int]bool {
	out := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.HasPrefix(string(c), "napi/"+ifname+"-") {
			out[pid] = true
		}
	}
	return out
}

// The ethtool ioctl's legacy commands that set one feature.
const (
	ethtoolSTSO = 0x1f
	ethtoolSGRO = 0x2c
)

// ethtoolSet sets a feature of ifname in the caller's namespace through
// the ethtool ioctl (no ethtool binary here).
func ethtoolSet(ifname string, cmd, value uint32) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// On the heap (which does not move), referenced below by address only.
	val := &struct{ cmd, data uint32 }{cmd, value}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data uintptr
		_    [16]byte
	}
	copy(ifr.name[:], ifname)
	ifr.data = uintptr(unsafe.Pointer(val))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(val)
	if errno != 0 {
		return errno
	}
	return nil
}
