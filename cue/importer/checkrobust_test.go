package importer

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/loader"
	"github.com/gitgw/gitgw/test/lab"
)

// checksHAProxy uses every check mapping of haproxy.cfg.
const checksHAProxy = `global
  ssl-server-verify none
defaults
  timeout connect 5s
  timeout client 30s
  timeout server 30s
listen web
  bind 203.0.113.1:443
  option httpchk GET /h HTTP/1.1\r\nHost:\ www\r\nX-A:\ b
  http-check connect port 8443 ssl sni api.example
  http-check send meth GET uri /healthz hdr X-Check yes
  http-check expect rstatus ^(200|30[12])$
  server a 198.51.100.1:443 check check-ssl verify required ca-file /etc/ca.pem crt /etc/c.pem check-sni app.example port 9443 addr 198.51.100.9
  server b 198.51.100.2:443 check check-ssl verify required ca-file /etc/ca.pem crt /etc/c.pem check-sni app.example port 9443 addr 198.51.100.9
listen redis
  bind 203.0.113.1:6379
  option tcp-check
  tcp-check connect port 6379 ssl
  tcp-check send PING\r\n
  tcp-check expect string +PONG
  tcp-check send-binary 50494e470d0a
  tcp-check expect binary 2b504f4e47
  tcp-check expect rstring ^\+PONG
  server r1 198.51.100.3:6379 check
listen smtp
  bind 203.0.113.1:25
  option smtpchk EHLO mail.example
  server m1 198.51.100.4:25 check
listen my
  bind 203.0.113.1:3306
  option mysql-check user haproxy
  server d1 198.51.100.5:3306 check
listen pg
  bind 203.0.113.1:5432
  option pgsql-check user postgres
  server p1 198.51.100.6:5432 check
listen tls
  bind 203.0.113.1:6443
  option ssl-hello-chk
  server k1 198.51.100.7:6443 check
listen body
  bind 203.0.113.1:80
  option httpchk
  http-check expect string ready
  server w1 198.51.100.8:80 check
resolvers dns
  nameserver ns1 198.51.100.53:53
  hold valid 5s
  timeout resolve 2s
listen named
  bind 203.0.113.1:8080
  source 0.0.0.0 usesrc clientip
  server n1 db1.example.net:5432 check resolvers dns init-addr last,libc,none port 8008
  server n2 198.51.100.10:5432 check port 8009
`

// checksKeepalived uses every check mapping of keepalived.conf.
const checksKeepalived = `SSL {
 certificate /etc/ka/c.pem
 key /etc/ka/k.pem
}
virtual_server 203.0.113.1 443 {
 real_server 198.51.100.1 443 {
  SSL_GET {
   url {
    path /a
    status_code 200-204
    regex ^ok
    username admin
    password secret
   }
   url {
    path /b
   }
   virtualhost app.example
   enable_sni
   connect_port 8443
   connect_ip 198.51.100.9
  }
 }
}
virtual_server 203.0.113.1 25 {
 real_server 198.51.100.2 25 {
  SMTP_CHECK {
   helo_name mail.example
   connect_timeout 3
  }
 }
}
virtual_server 203.0.113.1 80 {
 lvs_method DR
 lvs_sched mh
 persistence_timeout 300
 delay_loop 10
 quorum 2
 virtualhost www.example
 sorry_server 198.51.100.9 80
 real_server 198.51.100.3 8080 {
  weight 0
  HTTP_GET {
   url {
    path /c
    status_code 200
    digest 640205b7b0fc66c1ea91c463fac6334d
   }
   connect_port 8081
  }
 }
 real_server 198.51.100.4 80 {
  weight 3
  HTTP_GET {
   url {
    path /c
    status_code 200
    digest 640205b7b0fc66c1ea91c463fac6334d
   }
  }
 }
}
virtual_server 203.0.113.1 53 {
 protocol UDP
 lb_algo wlc
 real_server 198.51.100.5 53 {
  UDP_CHECK {
   payload 0001
   require_reply
   connect_timeout 2
  }
 }
}
virtual_server 203.0.113.1 8000 {
 real_server 198.51.100.6 8000 {
  MISC_CHECK {
   misc_path "/bin/check 198.51.100.6"
   misc_timeout 3
  }
 }
}
virtual_server 203.0.113.1 8001 {
 lb_kind NAT
 real_server 198.51.100.7 8001 {
  PING_CHECK {
   connect_timeout 2
  }
 }
}
`

// TestChecksAlwaysValid: the check mappings with each line deleted in
// turn, and the word after each keyword replaced by a strange one and by
// numbers: the site written always loads.
func TestChecksAlwaysValid(t *testing.T) {
	lab.SkipShort(t, "loads a few hundred sites")
	// Unchanged, every service imports.
	if res, view := loadText(t, "", checksHAProxy); len(res.Refused) > 0 || len(view.Services) != 8 {
		t.Fatalf("refused %v, services %d", res.Refused, len(view.Services))
	}
	mutants := func(conf string) []string {
		lines := strings.Split(conf, "\n")
		var out []string
		for i, l := range lines {
			if strings.TrimSpace(l) == "" {
				continue
			}
			repl := []string{""}
			if f := strings.Fields(l); len(f) > 1 {
				for _, w := range []string{`b\a"d!w{o}rd`, "0", "-1", "999999", `\xff`} {
					repl = append(repl, strings.Replace(l, f[1], w, 1))
				}
				repl = append(repl, strings.Replace(l, f[len(f)-1], `^(?!x)\`, 1))
			}
			for _, r := range repl {
				m := append(append([]string(nil), lines[:i]...), lines[i+1:]...)
				if r != "" {
					m = append(append(append([]string(nil), lines[:i]...), r), lines[i+1:]...)
				}
				out = append(out, strings.Join(m, "\n"))
			}
		}
		return out
	}
	for _, hap := range mutants(checksHAProxy) {
		res, err := Import(Options{HAProxy: []Input{{Path: "hap", Data: []byte(hap)}}, Nodes: []string{"gw1"}})
		var serr *SyntaxError
		if errors.As(err, &serr) {
			continue
		}
		if err != nil {
			t.Fatalf("Import: %v\n%s", err, hap)
		}
		dir := t.TempDir()
		if err := WriteDir(dir, res.Files, false); err != nil {
			t.Fatal(err)
		}
		if _, _, err := loader.Load(context.Background(), dir, ""); err != nil {
			t.Errorf("the site does not load: %v\n%s", err, goldenText(res))
		}
	}
	for _, ka := range mutants(checksKeepalived) {
		var w warnings
		var ssl *kaSSL
		dirs := parseKeepalived("ka", ka, &w)
		for _, d := range dirs {
			if d.Name == "SSL" {
				ssl = sslBlock(d, &w)
			}
		}
		var svcs []*service
		for _, d := range dirs {
			if d.Name == "virtual_server" {
				if s, _ := virtualServer(d, ssl, &w); s != nil {
					svcs = append(svcs, s)
				}
			}
		}
		files := writeSite(&site{nodes: []*node{{name: "gw1"}}, services: svcs})
		dir := t.TempDir()
		if err := WriteDir(dir, files, false); err != nil {
			t.Fatal(err)
		}
		if _, _, err := loader.Load(context.Background(), dir, "gw1"); err != nil {
			var b strings.Builder
			for _, f := range files {
				b.WriteString("-- " + f.Name + " --\n" + string(f.Data))
			}
			t.Errorf("the site does not load: %v\n%s\n%s", err, ka, b.String())
		}
	}
}
