package httpproxy

import (
	"strings"
	"testing"
)

// TestAuthValidate: a rule naming an unknown list or group, a hash the
// proxy cannot verify (plain text among them), a user in an undeclared
// group and a realm that would break its header are errors naming them.
func TestAuthValidate(t *testing.T) {
	const sha512 = "$6$k6y3o.eP$JlKBx9za966ud67qe45NSQYf8Nw.XFuk8QVRevoLh1XPCQDCBPjcU2JtGBSS0MOQW2PFxHSwRv6J.C0/D7cV91"
	list := func(hash string, groups ...string) map[string]Userlist {
		return map[string]Userlist{"L": {Groups: []string{"dev"}, Users: map[string]User{"boss": {Hash: hash, Groups: groups}}}}
	}
	auth := func(list string, groups ...string) Rule {
		return Rule{Auth: &Auth{}, When: []Cond{{Subject: SubjAuth, Userlist: list, Values: groups, Not: true}}}
	}
	for _, tc := range []struct {
		name string
		h    HTTP
		want string // "" valid
	}{
		{"valid", HTTP{Userlists: list(sha512, "dev"), Rules: []Rule{auth("L", "dev")}}, ""},
		{"bcrypt", HTTP{Userlists: list("$2y$04$Ja2tSXsvkwAdYRxOtORBXOb31wF7TjrxkOUbwzJuO/LO4WW4ouOAe"), Rules: []Rule{auth("L")}}, ""},
		{"unknown list", HTTP{Userlists: list(sha512), Rules: []Rule{auth("M")}}, `rule #1: condition #1: auth: no userlist "M"`},
		{"unknown group", HTTP{Userlists: list(sha512), Rules: []Rule{auth("L", "ops")}}, `auth: userlist "L" has no group "ops"`},
		{"plain text", HTTP{Userlists: list("dog")}, `userlist "L": user "boss": not a crypt hash`},
		{"DES crypt", HTTP{Userlists: list("abJnggxhB/yWI")}, `user "boss": not a crypt hash`},
		{"hash cut short", HTTP{Userlists: list("$6$k6y3o.eP$")}, `user "boss": crypt hash without its checksum`},
		{"bad bcrypt", HTTP{Userlists: list("$2y$04$short")}, `user "boss": bcrypt hash`},
		{"user in an undeclared group", HTTP{Userlists: list(sha512, "ops")}, `user "boss": group "ops" is not one of the list's groups`},
		{"realm with a quote", HTTP{Userlists: list(sha512), Rules: []Rule{{Auth: &Auth{Realm: `a"b`}}}}, `realm "a\"b"`},
		{"auth and deny", HTTP{Rules: []Rule{{Auth: &Auth{}, Deny: 403}}}, "want exactly one action"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.h.Validate(nil)
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			got := strings.Join(msgs, "\n")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("errors:\n%s\nwant one with %q", got, tc.want)
			}
		})
	}
}

// TestAuthCache: a successful check is remembered by a digest of the
// hash and password (a changed hash or another password misses), and the
// cache stays bounded.
func TestAuthCache(t *testing.T) {
	c := newAuthCache()
	c.add(authKey("h1", "p"))
	if !c.has(authKey("h1", "p")) || c.has(authKey("h2", "p")) || c.has(authKey("h1", "q")) {
		t.Fatal("cache keys do not follow the hash and the password")
	}
	for i := range 3 * authCacheSize {
		c.add(authKey("h", strings.Repeat("x", i)))
	}
	if n := len(c.keys); n > authCacheSize {
		t.Errorf("%d entries, bound %d", n, authCacheSize)
	}
	if !c.has(authKey("h", strings.Repeat("x", 3*authCacheSize-1))) {
		t.Error("the newest entry was evicted")
	}
}

// TestDescribeUserlists: the plan's words for the lists change when a
// password hash or a group changes, and never show a hash.
func TestDescribeUserlists(t *testing.T) {
	const h1, h2 = "$1$salt$qJH7.N4xYta3aEG/dfqo/0", "$1$salt$rJH7.N4xYta3aEG/dfqo/0"
	base := map[string]Userlist{"L": {Groups: []string{"dev"}, Users: map[string]User{"boss": {Hash: h1, Groups: []string{"dev"}}}}}
	d := strings.Join(DescribeUserlists(base), "; ")
	if strings.Contains(d, h1) || strings.Contains(d, "qJH7") {
		t.Errorf("a hash in the plan: %s", d)
	}
	if !strings.HasPrefix(d, "userlist L users boss groups dev digest ") {
		t.Errorf("description %q", d)
	}
	other := CloneUserlists(base)
	other["L"].Users["boss"] = User{Hash: h2, Groups: []string{"dev"}}
	if d2 := strings.Join(DescribeUserlists(other), "; "); d2 == d {
		t.Errorf("a changed hash leaves the plan's words as they were: %s", d2)
	}
	noGroup := CloneUserlists(base)
	noGroup["L"].Users["boss"] = User{Hash: h1}
	if d3 := strings.Join(DescribeUserlists(noGroup), "; "); d3 == d {
		t.Errorf("a changed group leaves the plan's words as they were: %s", d3)
	}
	if base["L"].Users["boss"].Hash != h1 {
		t.Error("CloneUserlists shares the users with its source")
	}
}
