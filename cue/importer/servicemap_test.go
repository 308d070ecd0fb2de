package importer

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/test/goldenfile"
)

// TestServiceMappings: each keepalived virtual_server and HAProxy server
// directive the kernel modes, UDP, transparent mode, servers by name and
// per-server check ports carry maps onto the site's field, checked on the
// loaded site; what does not map exactly is warned at its line. Every
// case's warnings, refusals and services.cue are in
// testdata/service-mappings.golden.
func TestServiceMappings(t *testing.T) {
	// The instance holds 203.0.113.1 on eth0 and 203.0.113.2 on eth1.
	const inst = "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  203.0.113.1/24\n  203.0.113.2/24 dev eth1\n }\n}\n"
	// vs is a TCP virtual_server (keepalived's default is UDP: the case
	// "no protocol" leaves the line out).
	vsAny := func(addr, body string) string {
		return inst + "virtual_server " + addr + " 80 {\n" + body + " real_server 198.51.100.1 80 {\n  weight 2\n  TCP_CHECK {\n  }\n }\n real_server 198.51.100.2 80 {\n  TCP_CHECK {\n  }\n }\n}\n"
	}
	vs := func(addr, body string) string {
		if !strings.Contains(body, "protocol") {
			body += " protocol TCP\n"
		}
		return vsAny(addr, body)
	}
	const listen = "listen l\n  bind 203.0.113.1:5432\n"
	type svc = spec.Service
	var golden strings.Builder
	for _, tt := range []struct {
		name, ka, hap string
		service       string // the service to look at
		want          func(s svc) bool
		warn          string // a warning that must be printed
	}{
		{name: "lb_kind NAT", ka: vs("203.0.113.1", " lb_algo wrr\n lb_kind NAT\n"),
			want: func(s svc) bool { return s.Mode == spec.ModeNAT && s.Protocol == "tcp" && s.Balance == "roundrobin" }},
		{name: "no protocol: keepalived's UDP, warned", ka: vsAny("203.0.113.1", " lb_algo wrr\n lb_kind NAT\n"),
			want: func(s svc) bool { return s.Protocol == "udp" },
			warn: "ka:9: virtual_server 203.0.113.1 80: no protocol: keepalived defaults to UDP"},
		{name: "no lb_kind: keepalived's NAT; no lb_algo: wlc, warned", ka: vs("203.0.113.1", ""),
			want: func(s svc) bool { return s.Mode == spec.ModeNAT && s.Balance == "roundrobin" },
			warn: "ka:9: no lb_algo (keepalived's default is wlc): gitgw's kernel forwarding has no least-connection scheduler"},
		{name: "lb_kind DR: the instance's interface, maglev for wrr", ka: vs("203.0.113.1", " lb_algo wrr\n lb_kind DR\n"),
			want: func(s svc) bool { return s.Mode == spec.ModeDR && s.Interface == "eth0" && s.Balance == "maglev" },
			warn: "ka:10: lb_algo wrr: IPVS takes the servers in turn, by weight; gitgw's dr keeps no connection state"},
		{name: "lvs_method DR, lvs_sched sh: the VIP's dev", ka: vs("203.0.113.2", " lvs_sched sh\n lvs_method DR\n"),
			want: func(s svc) bool { return s.Mode == spec.ModeDR && s.Interface == "eth1" && s.Balance == "source" }},
		{name: "lb_kind DR, a real_server on another port: the VIP's, checked on its own", ka: inst + "virtual_server 203.0.113.1 80 {\n lb_algo sh\n lb_kind DR\n real_server 198.51.100.1 8080 {\n  TCP_CHECK {\n  }\n }\n real_server 198.51.100.2 80 {\n  TCP_CHECK {\n  }\n }\n protocol TCP\n}\n",
			want: func(s svc) bool {
				a, b := s.Servers["198.51.100.1-8080"], s.Servers["198.51.100.2-80"]
				return a.Address == "198.51.100.1:80" && a.CheckPort == 8080 && b.CheckPort == 0 && s.Check.Port == 0
			},
			warn: "ka:9: lb_kind DR: real_server 198.51.100.1:8080 is forwarded to port 80"},
		{name: "lb_kind DR, no instance holds the VIP", ka: vs("203.0.113.9", " lb_algo mh\n lb_kind DR\n"),
			want: func(s svc) bool { return s.Mode == spec.ModeDR && s.Interface == "" && s.Balance == "maglev" },
			warn: "ka:9: lb_kind DR: no vrrp_instance holds VIP 203.0.113.9"},
		{name: "protocol UDP", ka: vs("203.0.113.1", " lb_algo rr\n protocol UDP\n"),
			want: func(s svc) bool { return s.Protocol == "udp" && s.Mode == spec.ModeNAT },
			warn: "ka:10: lb_algo rr: IPVS rr ignores the servers' weights; gitgw's weighs them"},
		{name: "lc in NAT: roundrobin, warned", ka: vs("203.0.113.1", " lb_algo lc\n"),
			want: func(s svc) bool { return s.Balance == "roundrobin" },
			warn: "ka:10: lb_algo lc: gitgw's kernel forwarding has no least-connection scheduler"},
		{name: "dh: not mapped, warned", ka: vs("203.0.113.1", " lb_algo dh\n"),
			want: func(s svc) bool { return s.Balance == "roundrobin" },
			warn: "ka:10: lb_algo dh: IPVS scheduler dh is not mapped"},
		{name: "persistence, quorum, sorry_server, delay_loop, ha_suspend, inhibit_on_failure",
			ka: inst + "virtual_server 203.0.113.1 80 {\n delay_loop 7\n lb_algo sh\n persistence_timeout 120\n persistence_granularity 255.255.255.0\n quorum 2\n ha_suspend\n" +
				" sorry_server 198.51.100.9 80\n real_server 198.51.100.1 80 {\n  inhibit_on_failure\n  TCP_CHECK {\n  }\n }\n protocol TCP\n}\n",
			want: func(s svc) bool {
				return s.Persistence.D() == 2*time.Minute && s.Servers["198.51.100.9-80"].Backup && s.Check != nil && s.Check.Interval.D() == 7*time.Second
			},
			warn: "ka:14: quorum 2: not mapped"},
		{name: "real_server weight 0: drain (quiescent)", ka: inst + "virtual_server 203.0.113.1 80 {\n lb_algo sh\n real_server 198.51.100.1 80 {\n  weight 0\n  TCP_CHECK {\n  }\n }\n real_server 198.51.100.2 80 {\n  weight 3\n  TCP_CHECK {\n  }\n }\n protocol TCP\n}\n",
			want: func(s svc) bool {
				return s.Servers["198.51.100.1-80"].Drain && s.Servers["198.51.100.2-80"].Weight == 3
			}},
		{name: "connect_port per real_server: check_port", ka: inst + "virtual_server 203.0.113.1 80 {\n lb_algo sh\n real_server 198.51.100.1 80 {\n  TCP_CHECK {\n   connect_port 8080\n  }\n }\n real_server 198.51.100.2 80 {\n  TCP_CHECK {\n   connect_port 8081\n  }\n }\n real_server 198.51.100.3 80 {\n  TCP_CHECK {\n  }\n }\n protocol TCP\n}\n",
			want: func(s svc) bool {
				return s.Check.Port == 0 && s.Servers["198.51.100.1-80"].CheckPort == 8080 && s.Servers["198.51.100.2-80"].CheckPort == 8081 && s.Servers["198.51.100.3-80"].CheckPort == 0
			}},
		{name: "the same connect_port on every real_server: the check's port", ka: inst + "virtual_server 203.0.113.1 80 {\n lb_algo sh\n real_server 198.51.100.1 80 {\n  TCP_CHECK {\n   connect_port 8080\n  }\n }\n real_server 198.51.100.2 80 {\n  TCP_CHECK {\n   connect_port 8080\n  }\n }\n protocol TCP\n}\n",
			want: func(s svc) bool { return s.Check.Port == 8080 && s.Servers["198.51.100.1-80"].CheckPort == 0 }},
		{name: "MISC_CHECK: a command, the server's address from the proxy", ka: inst + "virtual_server 203.0.113.1 80 {\n lb_algo sh\n real_server 198.51.100.1 80 {\n  MISC_CHECK {\n   misc_path \"/usr/local/bin/check 198.51.100.1 80\"\n   misc_timeout 3\n  }\n }\n real_server 198.51.100.2 80 {\n  MISC_CHECK {\n   misc_path \"/usr/local/bin/check 198.51.100.2 80\"\n   misc_timeout 3\n  }\n }\n protocol TCP\n}\n",
			want: func(s svc) bool {
				return s.Check.Kind == "command" && s.Check.Command == "/usr/local/bin/check $GITGW_SERVER_ADDR 80" && s.Check.Timeout.D() == 3*time.Second
			}},
		{name: "PING_CHECK: a command running ping", ka: inst + "virtual_server 203.0.113.1 80 {\n lb_algo sh\n real_server 198.51.100.1 80 {\n  PING_CHECK {\n   connect_timeout 2\n   retry 3\n  }\n }\n protocol TCP\n}\n",
			want: func(s svc) bool {
				return s.Check.Kind == "command" && s.Check.Command == `ping -n -q -c 1 -W 2 "$GITGW_SERVER_ADDR"` && s.Check.Timeout.D() == 2*time.Second && s.Check.Fall == 3
			}},
		{name: "real_servers checked differently: one command by server name", ka: inst + "virtual_server 203.0.113.1 80 {\n lb_algo sh\n real_server 198.51.100.1 80 {\n  HTTP_GET {\n   url {\n    path /a\n   }\n  }\n }\n real_server 198.51.100.2 443 {\n  SSL_GET {\n   url {\n    path /b\n   }\n  }\n }\n protocol TCP\n}\n",
			want: func(s svc) bool {
				c := s.Check.Command
				return s.Check.Kind == "command" && strings.HasPrefix(c, `case "$GITGW_SERVER_NAME" in '198.51.100.1-80') eval `) && strings.Contains(c, ` ;; '198.51.100.2-443') eval `) &&
					strings.Contains(c, "openssl") && strings.HasSuffix(c, " *) exit 0 ;; esac")
			},
			warn: "ka:9: virtual_server 203.0.113.1 80: its real_servers' checks differ"},
		{name: "virtual_server fwmark: fwmarks, servers without a port, the check's port",
			ka: inst + "virtual_server fwmark 7 {\n lb_algo sh\n persistence_timeout 900\n real_server 198.51.100.1 {\n  TCP_CHECK {\n   connect_port 80\n  }\n }\n real_server 198.51.100.2 {\n  TCP_CHECK {\n   connect_port 80\n  }\n }\n}\n",
			want: func(s svc) bool {
				return len(s.Binds) == 0 && len(s.Fwmarks) == 1 && s.Fwmarks[0] == 7 && s.Mode == spec.ModeNAT &&
					s.Servers["198.51.100.1"].Address == "198.51.100.1" && s.Check.Port == 80 && s.Persistence.D() == 15*time.Minute
			},
			warn: "ka:9: virtual_server fwmark 7: IPVS forwards every protocol's packets with fwmark 7; the imported service takes only TCP's"},
		{name: "virtual_server group: binds from addresses and ranges, fwmarks",
			ka: inst + "virtual_server_group G {\n 203.0.113.1 8080\n 203.0.113.3-5 80\n fwmark 1\n}\nvirtual_server group G {\n lb_algo sh\n real_server 198.51.100.1 80 {\n  TCP_CHECK {\n  }\n }\n protocol TCP\n}\n",
			want: func(s svc) bool {
				return strings.Join(s.Binds, " ") == "203.0.113.1:8080 203.0.113.3:80 203.0.113.4:80 203.0.113.5:80" &&
					len(s.Fwmarks) == 1 && s.Fwmarks[0] == 1 && s.Servers["198.51.100.1-80"].Address == "198.51.100.1:80"
			},
			warn: "ka:14: virtual_server group G: no vrrp_instance holds 203.0.113.3"},
		{name: "virtual_server group in DR, several ports: servers keep the client's port, checked on theirs",
			ka: inst + "virtual_server_group G {\n 203.0.113.1 80\n 203.0.113.1 443\n}\nvirtual_server group G {\n lb_algo mh\n lb_kind DR\n real_server 203.0.113.21 80 {\n  TCP_CHECK {\n  }\n }\n protocol TCP\n}\n",
			want: func(s svc) bool {
				return s.Mode == spec.ModeDR && s.Interface == "eth0" && s.Servers["203.0.113.21-80"].Address == "203.0.113.21" && s.Check.Port == 80
			},
			warn: "ka:13: lb_kind DR: real_server 203.0.113.21:80 receives each packet on the port the client asked for"},
		{name: "HAProxy server by name, resolvers", hap: "resolvers dns\n  nameserver ns1 198.51.100.53:53\n  hold valid 5s\n  timeout resolve 2s\n  resolve_retries 3\n" +
			listen + "  server a db1.example.net:5432 check resolvers dns init-addr last,libc,none\n  server b 198.51.100.2:5432 check\n", service: "l",
			want: func(s svc) bool {
				return s.Servers["a"].Address == "db1.example.net:5432" && s.ResolveInterval.D() == 5*time.Second
			},
			warn: "hap:2: nameserver ns1 198.51.100.53:53: not kept"},
		{name: "HAProxy server by name without resolvers", hap: listen + "  server a db1.example.net:5432 check\n", service: "l",
			want: func(s svc) bool {
				return s.Servers["a"].Address == "db1.example.net:5432" && s.ResolveInterval.D() == 0
			},
			warn: "hap:3: server a is given by name without resolvers: HAProxy resolves it once, at start"},
		{name: "HAProxy check port per server: check_port", hap: listen + "  option httpchk GET /master\n  http-check expect status 200\n  server a 198.51.100.1:5432 check port 8008\n  server b 198.51.100.2:5432 check port 8009\n  server c 198.51.100.3:5432 check\n", service: "l",
			want: func(s svc) bool {
				return s.Check.Port == 0 && s.Servers["a"].CheckPort == 8008 && s.Servers["b"].CheckPort == 8009 && s.Servers["c"].CheckPort == 0
			}},
		{name: "HAProxy source usesrc clientip: transparent", hap: listen + "  source 0.0.0.0 usesrc clientip\n  server a 198.51.100.1:5432 check\n", service: "l",
			want: func(s svc) bool { return s.Transparent }},
		{name: "HAProxy source ADDR: source_address", hap: listen + "  source ipv4@198.51.100.250:0\n  server a 198.51.100.1:5432 check\n  server b 198.51.100.2:5432 check\n", service: "l",
			want: func(s svc) bool {
				return s.SourceAddress == "198.51.100.250" && s.Servers["a"].SourceAddress == "" && !s.Transparent && s.TransparentAddress == ""
			}},
		{name: "HAProxy server source replaces the backend's", hap: listen + "  source 198.51.100.250\n  server a 198.51.100.1:5432 check source 198.51.100.251\n  server b 198.51.100.2:5432 check\n  server c 198.51.100.3:5432 check source *\n", service: "l",
			want: func(s svc) bool {
				return s.SourceAddress == "" && s.Servers["a"].SourceAddress == "198.51.100.251" && s.Servers["b"].SourceAddress == "198.51.100.250" && s.Servers["c"].SourceAddress == ""
			}},
		{name: "HAProxy usesrc ADDR2: transparent_address, checks from the source", hap: listen + "  server a 198.51.100.1:5432 check source 198.51.100.250 usesrc 203.0.113.99\n", service: "l",
			want: func(s svc) bool {
				return s.TransparentAddress == "203.0.113.99" && s.SourceAddress == "198.51.100.250" && !s.Transparent
			}},
		{name: "HAProxy usesrc clientip with a source: the checks'", hap: listen + "  source 198.51.100.250 usesrc clientip\n  server a 198.51.100.1:5432 check\n", service: "l",
			want: func(s svc) bool {
				return s.Transparent && s.SourceAddress == "198.51.100.250" && s.TransparentAddress == ""
			}},
		{name: "HAProxy source in HTTP mode: source_address", hap: "listen web\n  mode http\n  bind 203.0.113.1:80\n  source 198.51.100.250:0\n  monitor-uri /health\n  server a 198.51.100.1:80 check\n", service: "web",
			want: func(s svc) bool {
				return s.SourceAddress == "198.51.100.250" && s.HTTP != nil && s.HTTP.MonitorURI == "/health"
			}},
		{name: "HAProxy source of a use_backend pool: its source_address", hap: "frontend f\n  mode http\n  bind 203.0.113.1:80\n  use_backend p if { path_beg /p }\n  default_backend b\n" +
			"backend b\n  mode http\n  server a 198.51.100.1:80 check\nbackend p\n  mode http\n  server c 198.51.100.3:80 check source 198.51.100.251\n", service: "p",
			want: func(s svc) bool { return s.SourceAddress == "198.51.100.251" && len(s.Binds) == 0 }},
		{name: "HAProxy source in a frontend: ignored, as HAProxy does", hap: "frontend f\n  bind 203.0.113.1:80\n  source 198.51.100.2\n  default_backend b\nbackend b\n  server a 198.51.100.1:80 check\n", service: "f",
			want: func(s svc) bool { return s.SourceAddress == "" },
			warn: "hap:3: source 198.51.100.2: ignored, as HAProxy does"},
		{name: "HAProxy proxies of one name: both, HAProxy's refusal named", hap: listen + "  server a 198.51.100.1:5432 check\nlisten l\n  bind 203.0.113.1:5433\n  server a 198.51.100.1:5433 check\n", service: "l",
			want: func(s svc) bool { return s.Binds[0] == "203.0.113.1:5432" },
			warn: "hap:4: listen l has the name of listen l at hap:1: HAProxy 1.6 and later (2.6 included) refuse the configuration"},
		{name: "HAProxy usesrc clientip on every server: transparent", hap: listen + "  server a 198.51.100.1:5432 check source 0.0.0.0 usesrc clientip\n  server b 198.51.100.2:5432 check source 0.0.0.0 usesrc client\n", service: "l",
			want: func(s svc) bool { return s.Transparent },
			warn: "hap:4: usesrc client: imported as transparent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, view := loadText(t, tt.ka, tt.hap)
			name := tt.service
			if name == "" {
				for n := range view.Services {
					name = n
				}
			}
			s, ok := view.Services[name]
			if !ok || len(res.Refused) > 0 {
				t.Fatalf("service %s not imported (refused: %v)\n%s", name, res.Refused, goldenText(res))
			}
			if !tt.want(s) {
				t.Errorf("service %s = %+v\ncheck %+v\n%s", name, s, s.Check, goldenText(res))
			}
			if ws := strings.Join(warnStrings(res.Warnings), "\n"); tt.warn != "" && !strings.Contains(ws, tt.warn) {
				t.Errorf("no warning %q in:\n%s", tt.warn, ws)
			}
			fmt.Fprintf(&golden, "# %s\n%s", tt.name, serviceGolden(res))
		})
	}
	goldenfile.Check(t, filepath.Join("testdata", "service-mappings.golden"), []byte(golden.String()))
}

// serviceGolden is what an import says about services: its warnings,
// refusals and services.cue.
func serviceGolden(res *Result) string {
	var b strings.Builder
	for _, w := range res.Warnings {
		b.WriteString("warning: " + w.String() + "\n")
	}
	for _, r := range res.Refused {
		b.WriteString("refused: " + r.String() + "\n")
	}
	for _, f := range res.Files {
		if f.Name == "services.cue" {
			b.Write(f.Data)
		}
	}
	return b.String()
}
