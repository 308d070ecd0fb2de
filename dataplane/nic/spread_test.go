package nic

import (
	"os"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/lab"
)

func TestSoftirqSpread(t *testing.T) {
	f, err := os.Open("testdata/softirqs")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := parseSoftirqs(f, "NET_RX")
	if err != nil {
		t.Fatal(err)
	}
	cpu, share := s.Busiest()
	if cpu != 0 || share != 0.9 || s.Total() != 10000 {
		t.Errorf("busiest cpu%d %.2f of %d", cpu, share, s.Total())
	}
	want := "NET_RX softirqs: cpu0 90%, cpu1 4%, cpu2 3%, cpu3 3% — busiest cpu0 90% (even: 25%) of 10000"
	if got := s.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// A window between two observations.
	later := Spread{What: s.What, PerCPU: []CPUCount{{0, 9100}, {1, 500}, {2, 400}, {3, 400}}}
	if got := later.Sub(s).String(); !strings.Contains(got, "busiest cpu0 25% (even: 25%) of 400") {
		t.Errorf("window: %s", got)
	}
}

func TestSoftirqsWithOfflineCPU(t *testing.T) {
	f, err := os.Open("testdata/softirqs-offline")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := parseSoftirqs(f, "NET_RX")
	if err != nil {
		t.Fatal(err)
	}
	if cpu, share := s.Busiest(); cpu != 2 || share != 0.75 {
		t.Errorf("busiest cpu%d %.2f", cpu, share)
	}
}

func TestParseErrorsAndEmpty(t *testing.T) {
	for _, in := range []string{"", "garbage\n", "CPU0\nNET_TX: 1\n", "CPU0 CPU1\nNET_RX: 1\n", "CPU0\nNET_RX: x\n"} {
		if _, err := parseSoftirqs(strings.NewReader(in), "NET_RX"); err == nil {
			t.Errorf("parseSoftirqs(%q) succeeded", in)
		}
	}
	if got := (Spread{What: "eth0 interrupts"}).String(); got != "eth0 interrupts: none counted" {
		t.Errorf("empty spread: %s", got)
	}
}

func TestInterrupts(t *testing.T) {
	f, err := os.Open("testdata/interrupts")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, err := parseInterrupts(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 5 || lines[38].Name != "virtio2-input.0" || lines[38].Counts[1].Count != 100 {
		t.Errorf("lines: %+v", lines)
	}
}

// The real /proc of the test host parses, whatever its CPU count.
func TestParseHostProc(t *testing.T) {
	for _, name := range []string{"/proc/softirqs", "/proc/interrupts"} {
		f, err := os.Open(name)
		if err != nil {
			lab.Unavailable(t, "no %s: %v", name, err)
		}
		if name == "/proc/softirqs" {
			_, err = parseSoftirqs(f, "NET_RX")
		} else {
			_, err = parseInterrupts(f)
		}
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
