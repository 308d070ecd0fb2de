package units

import (
	"path/filepath"
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
