package loader

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const authHash = "$6$k6y3o.eP$JlKBx9za966ud67qe45NSQYf8Nw.XFuk8QVRevoLh1XPCQDCBPjcU2JtGBSS0MOQW2PFxHSwRv6J.C0/D7cV91"

// writeAuthSite writes a site whose web service has the given http
// rules and whose site block has the given userlists.
func writeAuthSite(t *testing.T, userlists, rules string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "cue.mod"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"cue.mod/module.cue": "module: \"example.net/t@v0\"\nlanguage: version: \"v0.17.0\"\n",
		"site.cue": `package site

site: userlists: {
` + userlists + `
}

nodes: gw1: interfaces: eth0: addresses: ["203.0.113.11/24"]

services: web: {
	binds: ["203.0.113.100:80"]
	servers: s1: address: "198.51.100.11:8080"
	http: rules: [
` + rules + `
	]
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestAuthSite: user lists and auth rules reach the node's view as
// written.
func TestAuthSite(t *testing.T) {
	dir := writeAuthSite(t, `	customer1: {
		groups: ["dev", "uat"]
		users: boss: {password_hash: "`+authHash+`", groups: ["uat"]}
		users: "tiger cat": password_hash: "$2y$04$Ja2tSXsvkwAdYRxOtORBXOb31wF7TjrxkOUbwzJuO/LO4WW4ouOAe"
	}`, `		{when: [{subject: "auth", userlist: "customer1", values: ["uat"], not: true}], auth: realm: "uat"},
		{when: [{subject: "auth", userlist: "customer1", not: true}], auth: {}},`)
	_, view, err := Load(context.Background(), dir, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	ul := view.Site.Userlists["customer1"]
	if ul.Users["boss"].PasswordHash != authHash || strings.Join(ul.Users["boss"].Groups, ",") != "uat" || len(ul.Users) != 2 {
		t.Errorf("userlist customer1: %+v", ul)
	}
	rules := view.Services["web"].HTTP.Rules
	if len(rules) != 2 || rules[0].Auth == nil || rules[0].Auth.Realm != "uat" || rules[1].Auth == nil || rules[1].Auth.Realm != "" {
		t.Fatalf("rules %+v", rules)
	}
	if c := rules[0].When[0]; c.Subject != "auth" || c.Userlist != "customer1" || strings.Join(c.Values, ",") != "uat" || !c.Not {
		t.Errorf("condition %+v", c)
	}
}

// TestAuthSiteErrors: a rule naming an unknown list or group, a user in
// an undeclared group, and a password that is no crypt hash (plain text,
// DES crypt, a hash cut short) are errors at their file and line, for a
// node and for the whole site.
func TestAuthSiteErrors(t *testing.T) {
	dir := writeAuthSite(t, `	L: {
		groups: ["dev"]
		users: boss: {password_hash: "`+authHash+`", groups: ["ops"]}
		users: scott: password_hash: "cat"
		users: des: password_hash: "abJnggxhB/yWI"
		users: cut: password_hash: "$6$k6y3o.eP$JlKBx9za"
	}`, `		{when: [{subject: "auth", userlist: "M"}], deny: 403},
		{when: [{subject: "auth", userlist: "L", values: ["uat"], not: true}], auth: {}},`)
	want := []string{
		"site.cue:7:", "site.userlists.L.users.scott.password_hash",
		"site.cue:8:", "site.userlists.L.users.des.password_hash",
		"site.cue:9:", "site.userlists.L.users.cut.password_hash",
	}
	for _, node := range []string{"gw1", ""} {
		_, _, err := Load(context.Background(), dir, node)
		if err == nil {
			t.Fatalf("node %q: no error", node)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("node %q: no %q in\n%v", node, w, err)
			}
		}
	}
	// The reference checks run once the schema's errors are gone.
	dir = writeAuthSite(t, `	L: {
		groups: ["dev"]
		users: boss: {password_hash: "`+authHash+`", groups: ["ops"]}
	}`, `		{when: [{subject: "auth", userlist: "M"}], deny: 403},
		{when: [{subject: "auth", userlist: "L", values: ["uat"], not: true}], auth: {}},`)
	want = []string{
		`site.cue:6:`, `user "boss": group "ops" is not in the groups of userlist "L"`,
		`site.cue:16:`, `userlist "M" is not defined in site.userlists`,
		`site.cue:17:`, `group "uat" is not in the groups of userlist "L"`,
	}
	for _, node := range []string{"gw1", ""} {
		_, _, err := Load(context.Background(), dir, node)
		if err == nil {
			t.Fatalf("node %q: no error", node)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("node %q: no %q in\n%v", node, w, err)
			}
		}
	}
}
