package nic

import (
	"slices"
	"testing"
)

func TestMaskFormatting(t *testing.T) {
	for _, tc := range []struct {
		list string
		mask string
	}{
		{"none", "0"},
		{"0", "1"},
		{"0-1", "3"},
		{"0-3", "f"},
		{"0-7", "ff"},
		{"0,2", "5"},
		{"31", "80000000"},
		{"32", "1,00000000"},
		{"35", "8,00000000"},
		{"0-39", "ff,ffffffff"},
		{"0-63", "ffffffff,ffffffff"},
		{"64", "1,00000000,00000000"},
		{"1,65", "2,00000000,00000002"},
	} {
		t.Run(tc.list, func(t *testing.T) {
			set, err := ParseCPUList(tc.list)
			if err != nil {
				t.Fatal(err)
			}
			if got := set.Mask(); got != tc.mask {
				t.Errorf("Mask(%s) = %q, want %q", tc.list, got, tc.mask)
			}
			back, err := ParseMask(tc.mask)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(set) {
				t.Errorf("ParseMask(%q) = %s, want %s", tc.mask, back, set)
			}
			if got := set.String(); got != tc.list {
				t.Errorf("String() = %q, want %q", got, tc.list)
			}
		})
	}
}

func TestMasksCompareAsBitmaps(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		equal bool
	}{
		{"00000003", "3", true},
		{"0,00000003", "3", true},
		{"00000000,00000003", "0003", true},
		{"ffffffff,ffffffff", "ffffffff,ffffffff", true},
		{"1,00000000", "00000001", false},
		{"3", "7", false},
		{"0", "00000000,00000000", true},
	} {
		a, err := ParseMask(tc.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseMask(tc.b)
		if err != nil {
			t.Fatal(err)
		}
		if a.Equal(b) != tc.equal || b.Equal(a) != tc.equal {
			t.Errorf("%q equal %q: got %v, want %v", tc.a, tc.b, a.Equal(b), tc.equal)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, m := range []string{"", "zz", "123456789", "1,,2", ",", "-1"} {
		if _, err := ParseMask(m); err == nil {
			t.Errorf("ParseMask(%q) succeeded", m)
		}
	}
	for _, l := range []string{"a", "3-1", "1-", "-", "0,,1", "99999999", "1-2-3"} {
		if _, err := ParseCPUList(l); err == nil {
			t.Errorf("ParseCPUList(%q) succeeded", l)
		}
	}
}

func TestCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		cpus []int
	}{
		{"", nil},
		{"none", nil},
		{" 0-1\n", []int{0, 1}},
		{"0-2,5,7-8", []int{0, 1, 2, 5, 7, 8}},
		{"3,1", []int{1, 3}},
		{"1,1-2", []int{1, 2}},
	} {
		s, err := ParseCPUList(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if got := s.CPUs(); !slices.Equal(got, tc.cpus) {
			t.Errorf("%q: got %v, want %v", tc.in, got, tc.cpus)
		}
	}
}

func TestSetOperations(t *testing.T) {
	a, b := NewCPUSet(0, 1, 2, 70), NewCPUSet(1, 70)
	if got := a.Minus(b).String(); got != "0,2" {
		t.Errorf("Minus = %s", got)
	}
	if got := a.Intersect(b).String(); got != "1,70" {
		t.Errorf("Intersect = %s", got)
	}
	if a.Max() != 70 || (CPUSet{}).Max() != -1 || a.Count() != 4 || !a.Has(70) || a.Has(3) || a.Has(-1) {
		t.Error("Max/Count/Has wrong")
	}
}

func TestDesiredCPUs(t *testing.T) {
	cpus := CPUInfo{Online: NewCPUSet(0, 1, 2, 3), Possible: NewCPUSet(0, 1, 2, 3, 4, 5, 6, 7), Isolated: NewCPUSet(3)}
	for _, tc := range []struct {
		spec  string
		index int
		rps   bool
		want  string
		fail  bool
	}{
		{spec: "all", rps: true, want: "0-2"},
		{spec: "all", want: "0-3"},
		{spec: "none", want: "none"},
		{spec: "spread", index: 0, want: "0"},
		{spec: "spread", index: 5, want: "1"},
		{spec: "spread:1-2", index: 0, want: "1"},
		{spec: "spread:1-2", index: 3, want: "2"},
		{spec: "spread:all", index: 3, want: "3"},
		{spec: "spread:2-5", fail: true},
		{spec: "1-2", want: "1-2"},
		{spec: "4", fail: true},  // possible but offline
		{spec: "16", fail: true}, // not even possible
		{spec: "x", fail: true},
	} {
		got, err := DesiredCPUs(tc.spec, tc.index, cpus, tc.rps)
		if tc.fail {
			if err == nil {
				t.Errorf("%s: want error, got %s", tc.spec, got)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("%s[%d] rps=%v: got %s, %v; want %s", tc.spec, tc.index, tc.rps, got, err, tc.want)
		}
	}
	// Every CPU isolated: RPS falls back to the online CPUs rather than an
	// empty mask the kernel would refuse.
	iso := CPUInfo{Online: NewCPUSet(0, 1), Isolated: NewCPUSet(0, 1)}
	if got, _ := DesiredCPUs("all", 0, iso, true); got.String() != "0-1" {
		t.Errorf("all isolated: got %s", got)
	}
}

func FuzzCPUSetRoundTrip(f *testing.F) {
	for _, s := range []string{"3", "00000003", "ff,ffffffff", "0", "1,00000000,00000000", "0-3,6", "none", "1-2,1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if m, err := ParseMask(s); err == nil {
			back, err := ParseMask(m.Mask())
			if err != nil || !back.Equal(m) {
				t.Fatalf("mask %q -> %q -> %v, %v", s, m.Mask(), back, err)
			}
		}
		if l, err := ParseCPUList(s); err == nil {
			back, err := ParseCPUList(l.String())
			if err != nil || !back.Equal(l) {
				t.Fatalf("list %q -> %q -> %v, %v", s, l.String(), back, err)
			}
		}
	})
}
