package importer

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/test/lab"
)

const authSHA512 = "$6$k6y3o.eP$JlKBx9za966ud67qe45NSQYf8Nw.XFuk8QVRevoLh1XPCQDCBPjcU2JtGBSS0MOQW2PFxHSwRv6J.C0/D7cV91"

// TestHTTPAuth: a userlist (groups given both ways), http_auth_group in
// a frontend and in a backend reached by use_backend, and http-request
// auth with and without realm import as site.userlists and auth rules in
// HAProxy's order; the default realm is the proxy's name (the backend's
// for its own rule); an insecure-password becomes a SHA-512 crypt hash
// that an independent crypt verifies, with a warning; the site loads.
func TestHTTPAuth(t *testing.T) {
	lab.RequireCommand(t, "python3")
	hap := `userlist customer1
  group adm users tiger
  group dev
  group uat users boss,tiger
  user tiger insecure-password dog groups dev
  user boss password ` + authSHA512 + `
frontend c1
  mode http
  bind 203.0.113.1:80
  acl host_uat hdr_beg(host) -i uat.local
  acl host_dev hdr_beg(host) -i dev.local
  acl auth_uat http_auth_group(customer1) uat
  http-request auth realm uat if host_uat !auth_uat
  use_backend c1dev if host_dev
  default_backend c1uat
backend c1uat
  mode http
  server s6 198.51.100.6:80 check
backend c1dev
  mode http
  acl auth_ok http_auth_group(customer1) dev adm
  http-request auth if !auth_ok
  server s7 198.51.100.7:80 check
`
	res, view := loadText(t, "", hap)
	if len(res.Refused) > 0 {
		t.Fatalf("refused: %v", res.Refused)
	}
	ul := view.Site.Userlists["customer1"]
	if got := ul.Groups; strings.Join(got, ",") != "adm,dev,uat" {
		t.Errorf("groups %v", got)
	}
	if u := ul.Users["tiger"]; strings.Join(u.Groups, ",") != "dev,adm,uat" {
		t.Errorf("tiger's groups %v, want dev (its own), adm and uat (the groups')", u.Groups)
	}
	if u := ul.Users["boss"]; u.PasswordHash != authSHA512 || strings.Join(u.Groups, ",") != "uat" {
		t.Errorf("boss: %+v", u)
	}
	tiger := ul.Users["tiger"].PasswordHash
	out, err := exec.Command("python3", "-W", "ignore", "-c", "import crypt,sys; print(crypt.crypt('dog', sys.argv[1]) == sys.argv[1])", tiger).Output()
	if err != nil || strings.TrimSpace(string(out)) != "True" {
		t.Errorf("tiger's hash %q does not verify dog with python3's crypt: %s %v", tiger, out, err)
	}
	if strings.Contains(goldenText(res), "dog") {
		t.Errorf("the plain password is in the import's output:\n%s", goldenText(res))
	}
	hostUAT := spec.HTTPCond{Subject: "host", Match: "prefix", Values: []string{"uat.local"}, IgnoreCase: true}
	hostDev := spec.HTTPCond{Subject: "host", Match: "prefix", Values: []string{"dev.local"}, IgnoreCase: true}
	want := []spec.HTTPRule{
		{Auth: &spec.HTTPAuth{Realm: "uat"}, When: []spec.HTTPCond{hostUAT, {Subject: "auth", Userlist: "customer1", Values: []string{"uat"}, Not: true}}},
		{Auth: &spec.HTTPAuth{Realm: "c1dev"}, When: []spec.HTTPCond{hostDev, {Subject: "auth", Userlist: "customer1", Values: []string{"dev", "adm"}, Not: true}}},
		{Use: "c1dev", When: []spec.HTTPCond{hostDev}},
	}
	if got := view.Services["c1"].HTTP.Rules; !reflect.DeepEqual(got, want) {
		t.Errorf("rules\n%+v\nwant\n%+v\n%s", got, want, goldenText(res))
	}
	warned := false
	for _, w := range res.Warnings {
		if strings.Contains(w.Msg, "user tiger insecure-password: imported as a SHA-512 crypt hash") && w.Pos.Line == 5 {
			warned = true
		}
		if strings.Contains(w.Msg, "userlist") || strings.Contains(w.Msg, "http_auth") {
			t.Errorf("warning about what is mapped: %s", w)
		}
	}
	if !warned {
		t.Errorf("no warning about the insecure-password at line 5:\n%s", goldenText(res))
	}
}

// TestHTTPAuthRefused: what the site cannot say about authentication
// refuses the frontend, naming the line and why; a list no imported rule
// names is not written, and says so.
func TestHTTPAuthRefused(t *testing.T) {
	head := `userlist L
  group dev users boss
  user boss password ` + authSHA512 + `
userlist unused
  user x insecure-password y
userlist des
  user old password abJnggxhB/yWI
userlist yes
  user new password $y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o7TomfHNxj0b0PXpTuCXsmJjdi6ViuXW4
frontend fe
  mode http
  bind 203.0.113.1:80
  default_backend be
backend be
  mode http
  server s 198.51.100.1:80 check
`
	for _, tc := range []struct {
		name, line, want string
	}{
		{"unknown list", "http-request auth if !{ http_auth(M) }", "http_auth(M): no userlist M"},
		{"unknown group", "http-request auth if !{ http_auth_group(L) ops }", "http_auth_group(L) ops: no such group"},
		{"group fetch without a group", "http-request auth if !{ http_auth_group(L) }", "http_auth_group(L) without a group"},
		{"DES crypt", "http-request auth if !{ http_auth(des) }", "userlist des: user old password (a DES crypt or unknown hash) at line 7"},
		{"yescrypt", "http-request auth if !{ http_auth(yes) }", "user new password $y$…"},
		{"unknown auth option", "http-request auth foo bar if !{ http_auth(L) }", "auth option foo"},
		{"a realm with a quote", `http-request auth realm a\"b if !{ http_auth(L) }`, `realm "a\"b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := importText(t, "", strings.Replace(head, "  default_backend be\n", "  "+tc.line+"\n  default_backend be\n", 1))
			text := goldenText(res)
			found := false
			for _, r := range res.Refused {
				if strings.HasPrefix(r.What, "frontend fe") && strings.Contains(r.Directive, tc.want) && r.Pos.Line == 13 {
					found = true
				}
			}
			if !found {
				t.Errorf("no refusal of frontend fe at line 13 with %q:\n%s", tc.want, text)
			}
			if strings.Contains(text, "$6$") {
				t.Errorf("a list was written for a refused rule:\n%s", text)
			}
			if !strings.Contains(text, "hap:4: userlist unused: not imported (no imported rule names it)") {
				t.Errorf("the unused list is not named:\n%s", text)
			}
		})
	}
}
