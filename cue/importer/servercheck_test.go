package importer

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gitgw/gitgw/cue/spec"
)

// ownCheck is what a loaded server says of its own part in the check.
type ownCheck struct {
	Unchecked bool
	Address   string
	Port      int
	Targets   []string
}

func ownChecks(svc spec.Service) map[string]ownCheck {
	out := map[string]ownCheck{}
	for name, sv := range svc.Servers {
		out[name] = ownCheck{sv.Unchecked, sv.CheckAddress, sv.CheckPort, sv.CheckTargets}
	}
	return out
}

// TestKeepalivedServerChecks: real servers checked at addresses that
// differ keep their own (check_address); an SMTP_CHECK's host blocks are
// the server's check_targets (each defaulting to the real server's
// address and port), or, alone, its check address and port; a real
// server without a checker and a sorry_server, which keepalived never
// takes out, are unchecked. Loaded through the real schema.
func TestKeepalivedServerChecks(t *testing.T) {
	for _, tt := range []struct {
		name, conf string
		address    string // the service check's
		want       map[string]ownCheck
	}{
		{name: "connect_ip that differs, no checker, sorry_server", conf: `virtual_server 203.0.113.1 80 {
 lb_kind DR
 sorry_server 198.51.100.9 80
 real_server 198.51.100.1 80 {
  TCP_CHECK {
   connect_ip 192.0.2.1
  }
 }
 real_server 198.51.100.2 80 {
  TCP_CHECK {
   connect_ip 192.0.2.2
   connect_port 8080
  }
 }
 real_server 198.51.100.3 80 {
  TCP_CHECK {
  }
 }
 real_server 198.51.100.4 80 {
  weight 2
 }
}
`, want: map[string]ownCheck{
			"198.51.100.1-80": {Address: "192.0.2.1"},
			"198.51.100.2-80": {Address: "192.0.2.2", Port: 8080},
			"198.51.100.3-80": {},
			"198.51.100.4-80": {Unchecked: true},
			"198.51.100.9-80": {Unchecked: true},
		}},
		{name: "SMTP_CHECK host blocks", conf: `virtual_server 203.0.113.1 25 {
 lb_kind DR
 real_server 198.51.100.1 25 {
  SMTP_CHECK {
   helo_name mail.example
  }
 }
 real_server 198.51.100.2 25 {
  SMTP_CHECK {
   host {
    connect_ip 198.51.100.2
   }
   host {
    connect_ip 192.0.2.2
    connect_port 587
    bindto 198.51.100.250
   }
   helo_name mail.example
  }
 }
 real_server 198.51.100.3 25 {
  SMTP_CHECK {
   helo_name mail.example
   host {
    connect_ip 192.0.2.3
   }
  }
 }
}
`, want: map[string]ownCheck{
			"198.51.100.1-25": {},
			"198.51.100.2-25": {Targets: []string{"198.51.100.2:25", "192.0.2.2:587"}},
			"198.51.100.3-25": {Address: "192.0.2.3"},
		}},
		{name: "UDP_CHECK connect_ip that differs", conf: `virtual_server 203.0.113.1 53 {
 lb_kind DR
 protocol UDP
 real_server 198.51.100.1 53 {
  UDP_CHECK {
   connect_ip 192.0.2.1
  }
 }
 real_server 198.51.100.2 53 {
  UDP_CHECK {
  }
 }
}
`, want: map[string]ownCheck{"198.51.100.1-53": {Address: "192.0.2.1"}, "198.51.100.2-53": {}}},
		{name: "the same connect_ip everywhere is the check's", conf: `virtual_server 203.0.113.1 80 {
 lb_kind DR
 real_server 198.51.100.1 80 {
  TCP_CHECK {
   connect_ip 192.0.2.1
  }
 }
 real_server 198.51.100.2 80 {
  TCP_CHECK {
   connect_ip 192.0.2.1
  }
 }
}
`, address: "192.0.2.1", want: map[string]ownCheck{"198.51.100.1-80": {}, "198.51.100.2-80": {}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svc, ns := loadVirtualServer(t, tt.conf)
			if len(ns) > 0 {
				t.Fatalf("refused: %v", ns)
			}
			if svc.Check == nil || svc.Unchecked || svc.Check.Address != tt.address {
				t.Fatalf("service check %+v (unchecked %v), want one on address %q", svc.Check, svc.Unchecked, tt.address)
			}
			if d := cmp.Diff(tt.want, ownChecks(svc), checkCmp); d != "" {
				t.Errorf("servers (-want +got):\n%s", d)
			}
		})
	}
}

// TestHAProxyServerChecks: servers without "check" beside checked ones,
// which HAProxy never marks down, are unchecked; check addresses that
// differ are each server's own.
func TestHAProxyServerChecks(t *testing.T) {
	res, view := loadText(t, "", `listen db
  bind 203.0.113.1:5432
  option httpchk GET /primary
  http-check expect status 200
  server a 198.51.100.1:5432 check addr 192.0.2.1 port 8008
  server b 198.51.100.2:5432 check addr 192.0.2.2 port 8008
  server c 198.51.100.3:5432
  server d 198.51.100.4:5432 backup
`)
	if len(res.Refused) > 0 {
		t.Fatalf("refused: %v", res.Refused)
	}
	svc := view.Services["db"]
	if svc.Check == nil || svc.Check.Port != 8008 || svc.Check.Address != "" {
		t.Fatalf("check %+v, want port 8008 and no address", svc.Check)
	}
	want := map[string]ownCheck{"a": {Address: "192.0.2.1"}, "b": {Address: "192.0.2.2"}, "c": {Unchecked: true}, "d": {Unchecked: true}}
	if d := cmp.Diff(want, ownChecks(svc), checkCmp); d != "" {
		t.Errorf("servers (-want +got):\n%s\n%s", d, goldenText(res))
	}
}

// TestKeepalivedSecondChecker: keepalived takes a real server down when
// any of its checkers fails. Checkers that differ only by where they
// connect (keepalived 2's replacement for SMTP_CHECK host blocks) become
// the server's check_targets; a checker of another kind is refused, never
// dropped.
func TestKeepalivedSecondChecker(t *testing.T) {
	svc, ns := loadVirtualServer(t, `virtual_server 203.0.113.1 25 {
 lb_kind DR
 real_server 198.51.100.1 25 {
  SMTP_CHECK {
   helo_name mail.example
  }
  SMTP_CHECK {
   helo_name mail.example
   connect_ip 192.0.2.1
   connect_port 587
  }
 }
 real_server 198.51.100.2 25 {
  SMTP_CHECK {
   helo_name mail.example
  }
 }
}
`)
	if len(ns) > 0 {
		t.Fatalf("refused: %v", ns)
	}
	want := map[string]ownCheck{"198.51.100.1-25": {Targets: []string{"198.51.100.1:25", "192.0.2.1:587"}}, "198.51.100.2-25": {}}
	if d := cmp.Diff(want, ownChecks(svc), checkCmp); d != "" {
		t.Errorf("servers (-want +got):\n%s", d)
	}
	_, ns = loadVirtualServer(t, `virtual_server 203.0.113.1 80 {
 lb_kind DR
 real_server 198.51.100.1 80 {
  TCP_CHECK {
  }
  HTTP_GET {
   url {
    path /health
   }
  }
 }
}
`)
	if len(ns) != 1 || ns[0].feature != FeatPerServerCheck || ns[0].pos.Line != 6 {
		t.Errorf("a TCP_CHECK and an HTTP_GET on one server: refused %v, want per-server-check at line 6", ns)
	}
}
