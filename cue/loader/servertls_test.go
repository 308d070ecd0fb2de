package loader

import (
	"context"
	"strings"
	"testing"
)

// TestServerTLS: a server's tls block reaches the node's view with its
// defaults (verify required, sessions resumed); a bad form is refused at
// its position: a relative path, an unknown verify, a certificate without
// its key.
func TestServerTLS(t *testing.T) {
	dir := writeSite(t, `	servers: {
		api: {address: "198.51.100.11:8443", tls: {ca_file: "/etc/gitgw/ca.pem", sni: "api.example.test", alpn: ["h2", "http/1.1"]}}
		self: {address: "198.51.100.12:8443", tls: {verify: "none", session_reuse: false, cert_file: "/etc/gitgw/gw.pem", key_file: "/etc/gitgw/gw.pem"}}
		plain: address: "198.51.100.13:8080"
	}`)
	_, view, err := Load(context.Background(), dir, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	web := view.Services["web"]
	api, self := web.Servers["api"].TLS, web.Servers["self"].TLS
	if api == nil || api.Verify != "required" || api.CAFile != "/etc/gitgw/ca.pem" || api.SNI != "api.example.test" ||
		strings.Join(api.ALPN, ",") != "h2,http/1.1" || !api.SessionReuse {
		t.Errorf("api tls %+v", api)
	}
	if self == nil || self.Verify != "none" || self.SessionReuse || self.CertFile != "/etc/gitgw/gw.pem" || self.KeyFile != "/etc/gitgw/gw.pem" {
		t.Errorf("self tls %+v", self)
	}
	if web.Servers["plain"].TLS != nil {
		t.Errorf("plain server has tls %+v", web.Servers["plain"].TLS)
	}

	bad := map[string]string{
		"relative": `tls: ca_file: "ca.pem"`,
		"verify":   `tls: verify: "optional"`,
		"certonly": `tls: cert_file: "/etc/gitgw/gw.pem"`,
		"keyonly":  `tls: key_file: "/etc/gitgw/gw.key"`,
		"sni":      `tls: sni: "api example"`,
	}
	var b strings.Builder
	b.WriteString("\tservers: {\n")
	for name, tls := range bad {
		b.WriteString("\t\t" + name + `: {address: "198.51.100.11:8443", ` + tls + "}\n")
	}
	b.WriteString("\t}")
	_, _, err = Load(context.Background(), writeSite(t, b.String()), "gw1")
	errs, ok := AsErrors(err)
	if !ok {
		t.Fatalf("want positioned errors, got %v", err)
	}
	for name := range bad {
		found := false
		for _, e := range errs {
			if strings.Contains(e.Error(), "services.web.servers."+name+".tls") && e.Line > 0 {
				found = true
			}
		}
		if !found {
			t.Errorf("server %s (%s): no positioned error in\n%v", name, bad[name], errs)
		}
	}
}
