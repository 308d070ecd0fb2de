package units

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/test/goldenfile"
	"github.com/google/go-cmp/cmp"
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name+".golden"), got)
}

// seedTemplate is the seed's app@.service, with hardening and extras.
func seedTemplate() Template {
	return Template{
		Name: "app",
		Unit: UnitSection{
			Description:   "app backend on port %i",
			Documentation: []string{"https://example.invalid/app"},
			After:         []string{"network-online.target"},
			Wants:         []string{"network-online.target"},
		},
		Service: ServiceSection{
			Type:             "exec",
			User:             "app",
			Group:            "app",
			WorkingDirectory: "/srv/app",
			Environment:      map[string]string{"PORT": "%i", "GREETING": "hello world", "MODE": "prod"},
			EnvironmentFile:  []string{"-/etc/default/app"},
			ExecStart:        "/usr/local/bin/app --port %i",
			Restart:          "always",
			RestartDelay:     3 * time.Second,
			TimeoutStop:      90 * time.Second,
			Limits:           map[string]string{"NOFILE": "65535", "LimitNPROC": "4096"},
			CPUQuota:         "150%",
			MemoryMax:        "2G",
			Slice:            "app.slice",
			Hardening: Hardening{
				NoNewPrivileges:         true,
				PrivateTmp:              true,
				ProtectSystem:           "strict",
				ProtectHome:             "true",
				ReadWritePaths:          []string{"/var/lib/app"},
				RestrictAddressFamilies: []string{"AF_INET", "AF_INET6", "AF_UNIX"},
			},
		},
		Install: InstallSection{WantedBy: []string{"multi-user.target"}},
		Extra: []Directive{
			{Section: "Service", Key: "KillSignal", Value: "SIGINT"},
			{Section: "Unit", Key: "ConditionPathExists", Value: "/usr/local/bin/app"},
			{Section: "X-Gitgw", Key: "Pool", Value: "web"},
		},
		Instances: Ports(8080, 8085),
	}
}

func TestRenderUnitGolden(t *testing.T) {
	golden(t, "app@.service", RenderUnit(seedTemplate()))
	minimal := Template{Name: "min", Service: ServiceSection{ExecStart: "/bin/true %i"}}
	golden(t, "min@.service", RenderUnit(minimal))
	golden(t, "dropin.conf", RenderDropIn(DropIn{Unit: "haproxy.service", Name: "50-gitgw", Directives: []Directive{
		{Section: "Service", Key: "LimitNOFILE", Value: "100000"},
		{Section: "Unit", Key: "After", Value: "gitgw.service"},
	}}))
}

func TestRenderDeterministic(t *testing.T) {
	a := RenderUnit(seedTemplate())
	for range 20 {
		if b := RenderUnit(seedTemplate()); string(a) != string(b) {
			t.Fatal("RenderUnit is not deterministic")
		}
	}
}

func TestOwnership(t *testing.T) {
	r := RenderUnit(seedTemplate())
	if o := ParseOwnership(r); !o.Owned || o.Edited || o.Written != contentHash(r) || len(o.Written) != 64 {
		t.Fatalf("fresh render: %+v", o)
	}
	edited := append([]byte{}, r...)
	edited = append(edited, "Nice=5\n"...)
	if o := ParseOwnership(edited); !o.Owned || !o.Edited {
		t.Fatalf("edited: %+v", o)
	}
	if o := ParseOwnership([]byte("[Unit]\nDescription=foreign\n")); o.Owned {
		t.Fatalf("foreign: %+v", o)
	}
	if o := ParseOwnership(nil); o.Owned {
		t.Fatalf("empty: %+v", o)
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		3 * time.Second: "3s", 100 * time.Millisecond: "100ms", 90 * time.Second: "90s",
		2 * time.Minute: "2min", 1500 * time.Microsecond: "1500us",
	} {
		if got := duration(d); got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Config{Templates: []Template{seedTemplate()}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]Config{
		"at in name":      {Templates: []Template{{Name: "a@b", Service: ServiceSection{ExecStart: "x"}}}},
		"no exec":         {Templates: []Template{{Name: "a"}}},
		"dup template":    {Templates: []Template{seedTemplate(), seedTemplate()}},
		"dup instance":    {Templates: []Template{{Name: "a", Service: ServiceSection{ExecStart: "x"}, Instances: []string{"1", "1"}}}},
		"bad instance":    {Templates: []Template{{Name: "a", Service: ServiceSection{ExecStart: "x"}, Instances: []string{"a b"}}}},
		"bad drift":       {Drift: "sometimes"},
		"newline in raw":  {Templates: []Template{{Name: "a", Service: ServiceSection{ExecStart: "x"}, Extra: []Directive{{Section: "Service", Key: "K", Value: "a\nb"}}}}},
		"bad dropin name": {DropIns: []DropIn{{Unit: "x.service", Name: "a/b"}}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestUnifiedDiff(t *testing.T) {
	a := []byte("l1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\nl9\nl10\nl11\nl12\n")
	b := []byte("l1\nl2\nl3\nl4\nX5\nl6\nl7\nl8\nl9\nl10\nl11\nl12\nl13\n")
	got := UnifiedDiff("f", a, b)
	want := []string{"--- a/f", "+++ b/f",
		"@@ -2,7 +2,7 @@", " l2", " l3", " l4", "-l5", "+X5", " l6", " l7", " l8",
		"@@ -10,3 +10,4 @@", " l10", " l11", " l12", "+l13"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("diff (-want +got):\n%s", d)
	}
	if UnifiedDiff("f", a, a) != nil {
		t.Error("equal inputs give a diff")
	}
	if got := UnifiedDiff("f", nil, []byte("x\n")); !cmp.Equal(got, []string{"--- a/f", "+++ b/f", "@@ -0,0 +1 @@", "+x"}) {
		t.Errorf("create diff: %q", got)
	}
}

func TestTemplateFile(t *testing.T) {
	for in, want := range map[string]string{
		"app@8080.service": "app@.service", "app@.service": "", "plain.service": "", "a@b@c.service": "a@.service",
	} {
		if got := templateFile(in); got != want {
			t.Errorf("templateFile(%q) = %q, want %q", in, got, want)
		}
	}
}

// injectAt appends inj to the n-th string of v (fields, slice elements, map
// keys and values, in a fixed walk order) and reports whether there was
// an n-th string.
func injectAt(v reflect.Value, n *int, inj string) bool {
	switch v.Kind() {
	case reflect.String:
		if *n == 0 {
			v.SetString(v.String() + inj)
			return true
		}
		*n--
	case reflect.Struct:
		for i := range v.NumField() {
			if injectAt(v.Field(i), n, inj) {
				return true
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			if injectAt(v.Index(i), n, inj) {
				return true
			}
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			for _, key := range []bool{true, false} {
				if *n > 0 {
					*n--
					continue
				}
				val := v.MapIndex(k)
				if key {
					v.SetMapIndex(k, reflect.Value{})
					v.SetMapIndex(reflect.ValueOf(k.String()+inj), val)
				} else {
					v.SetMapIndex(k, reflect.ValueOf(val.String()+inj))
				}
				return true
			}
		}
	}
	return false
}

// TestControlCharactersRefused puts a CR (systemd reads it as a line
// break: the rest becomes a directive of its own), a LF, a NUL and an
// escape into every string of a template and of a drop-in, one at a time:
// each is refused by Validate, the check that runs before anything is
// rendered or written. A tab stays allowed.
func TestControlCharactersRefused(t *testing.T) {
	dropIn := func() DropIn {
		return DropIn{Unit: "haproxy.service", Name: "50-gitgw", Directives: []Directive{{Section: "Service", Key: "LimitNOFILE", Value: "65535"}}}
	}
	for _, inj := range []string{"\rExecStartPre=/bin/evil", "\nExecStartPre=/bin/evil", "\x00", "\x1b[2J", "\x7f"} {
		slots := 0
		for n := 0; ; n++ {
			tmpl := seedTemplate()
			k := n
			if !injectAt(reflect.ValueOf(&tmpl).Elem(), &k, inj) {
				break
			}
			slots++
			if err := (Config{Templates: []Template{tmpl}}).Validate(); err == nil {
				t.Errorf("%q in string %d of the template: accepted; rendered:\n%s", inj, n, RenderUnit(tmpl))
			}
		}
		if slots < 30 {
			t.Fatalf("walked only %d strings of the template", slots)
		}
		for n := 0; ; n++ {
			d := dropIn()
			k := n
			if !injectAt(reflect.ValueOf(&d).Elem(), &k, inj) {
				break
			}
			if err := (Config{DropIns: []DropIn{d}}).Validate(); err == nil {
				t.Errorf("%q in string %d of the drop-in: accepted", inj, n)
			}
		}
	}
	tab := seedTemplate()
	tab.Unit.Description = "app\tbackend"
	if err := (Config{Templates: []Template{tab}}).Validate(); err != nil {
		t.Errorf("a tab in the description: %v", err)
	}
}
