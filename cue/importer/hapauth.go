package importer

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/GehirnInc/crypt/sha512_crypt"
)

// HTTP basic authentication: HAProxy's userlist sections, the fetches
// http_auth(L) and http_auth_group(L) G…, and `http-request auth [realm
// R]`, imported as the site's site.userlists, the HTTP condition auth
// and the rule action auth. A list is written to the site when a rule of
// an imported service names it; passwords only as crypt(3) hashes.

// hapUserlist is a userlist section.
type hapUserlist struct {
	name   string // as written; the site's name is siteName(name)
	pos    Pos
	groups []string // declared, in order
	users  []*hapUser
	// bad is why a user cannot be imported (a hash gitgw cannot
	// verify, a group or user that is not declared): the rules that
	// name the list are refused with it.
	bad []need
}

type hapUser struct {
	name   string
	pos    Pos
	hash   string
	groups []string
	// insecure: the hash was made at import from an insecure-password.
	insecure bool
}

// passwordHashRE is the schema's #PasswordHash: the crypt(3) schemes the
// proxy verifies.
var passwordHashRE = regexp.MustCompile(`^(\$1\$[./0-9A-Za-z]{0,8}\$[./0-9A-Za-z]{22}|\$5\$(rounds=[0-9]+\$)?[./0-9A-Za-z]{0,16}\$[./0-9A-Za-z]{43}|\$6\$(rounds=[0-9]+\$)?[./0-9A-Za-z]{0,16}\$[./0-9A-Za-z]{86}|\$2[aby]\$[0-9]{2}\$[./0-9A-Za-z]{53})$`)

// userlistSection reads a userlist section: `group G [users U,…]` and
// `user U [password HASH | insecure-password PASS] [groups G,…]`, in any
// order (HAProxy resolves the names once the section is read).
func (c *hapConfig) userlistSection(s *hapSection, w *warnings) {
	ul := &hapUserlist{name: s.Name(), pos: s.Pos}
	if ul.name == "" {
		w.syntax(s.Pos, "userlist without a name")
		return
	}
	if prev := c.userlists[ul.name]; prev != nil {
		w.syntax(s.Pos, "userlist %s defined again (first at %s)", ul.name, prev.pos)
		return
	}
	type member struct {
		group, user string
		pos         Pos
	}
	var members []member // a group's users line
	for _, l := range s.Lines {
		ws := l.Words
		switch ws[0] {
		case "group":
			if len(ws) < 2 || len(ws) != 2 && (len(ws) != 4 || ws[2] != "users") {
				w.syntax(l.Pos, "%q: want group NAME [users USER,…]", strings.Join(ws, " "))
				continue
			}
			ul.groups = append(ul.groups, ws[1])
			if len(ws) == 4 {
				for _, u := range strings.Split(ws[3], ",") {
					members = append(members, member{ws[1], u, l.Pos})
				}
			}
		case "user":
			u, ok := ul.user(l, w)
			if ok {
				ul.users = append(ul.users, u)
			}
		default:
			hapNotMapped(l, w)
		}
	}
	for _, m := range members {
		i := slices.IndexFunc(ul.users, func(u *hapUser) bool { return u.name == m.user })
		if i < 0 {
			ul.bad = append(ul.bad, needs(m.pos, FeatContentSwitching, "group %s users …%s… (no such user in userlist %s)", m.group, m.user, ul.name))
			continue
		}
		if !slices.Contains(ul.users[i].groups, m.group) {
			ul.users[i].groups = append(ul.users[i].groups, m.group)
		}
	}
	for _, u := range ul.users {
		for _, g := range u.groups {
			if !slices.Contains(ul.groups, g) {
				ul.bad = append(ul.bad, needs(u.pos, FeatContentSwitching, "user %s groups …%s… (no such group in userlist %s)", u.name, g, ul.name))
			}
		}
	}
	c.userlists[ul.name] = ul
	c.userlistOrder = append(c.userlistOrder, ul.name)
}

// user reads one user line.
func (ul *hapUserlist) user(l hapLine, w *warnings) (*hapUser, bool) {
	ws := l.Words
	if len(ws) < 2 {
		w.syntax(l.Pos, "user without a name")
		return nil, false
	}
	u := &hapUser{name: ws[1], pos: l.Pos}
	if strings.ContainsAny(u.name, ":") || strings.ContainsFunc(u.name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		ul.bad = append(ul.bad, needs(l.Pos, FeatContentSwitching, "user %q (a name no client can send: a colon or a control character)", u.name))
	}
	plain, havePassword := "", false
	for i := 2; i < len(ws); i += 2 {
		if i+1 >= len(ws) {
			w.syntax(l.Pos, "user %s: %s without a value", u.name, ws[i])
			return nil, false
		}
		switch ws[i] {
		case "password":
			u.hash, havePassword = ws[i+1], true
		case "insecure-password":
			plain, havePassword = ws[i+1], true
		case "groups":
			u.groups = append(u.groups, strings.Split(ws[i+1], ",")...)
		default:
			w.syntax(l.Pos, "user %s: unknown option %s", u.name, ws[i])
			return nil, false
		}
	}
	switch {
	case !havePassword:
		// HAProxy takes a user without a password; no password checks
		// against it.
		ul.bad = append(ul.bad, needs(l.Pos, FeatContentSwitching, "user %s without a password", u.name))
	case u.hash == "":
		u.hash, u.insecure = importHash(ul.name, u.name, plain), true
	case !passwordHashRE.MatchString(u.hash):
		ul.bad = append(ul.bad, needs(l.Pos, FeatPasswordHash, "user %s password %s", u.name, hashScheme(u.hash)))
	}
	return u, true
}

// hashScheme names a hash by its scheme only: a refusal shows no hash.
func hashScheme(h string) string {
	if strings.HasPrefix(h, "$") {
		if i := strings.IndexByte(h[1:], '$'); i >= 0 {
			return h[:i+2] + "…"
		}
	}
	return "(a DES crypt or unknown hash)"
}

// importHash hashes an insecure-password with SHA-512 crypt. The salt
// is derived from the list's and the user's names, not drawn at random,
// so that importing the same file twice writes the same site (and its
// goldens hold); it is derived from no part of the password, which would
// make a fast test of guesses.
func importHash(list, user, password string) string {
	sum := sha256.Sum256([]byte("gitgw import\x00" + list + "\x00" + user))
	const alphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	salt := make([]byte, 16)
	for i := range salt {
		salt[i] = alphabet[sum[i]%64]
	}
	h, err := sha512_crypt.New().Generate([]byte(password), []byte("$6$"+string(salt)))
	if err != nil {
		panic(fmt.Sprintf("import: sha512-crypt of a fixed salt: %v", err)) // the salt above is always valid
	}
	return h
}

// authCriterion reads http_auth(L) and http_auth_group(L) G… as an auth
// condition; ok false: not an auth fetch.
func (p *hapProxy) authCriterion(ws []string) (httpCond, string, bool) {
	fetch := ws[0]
	i := strings.IndexByte(fetch, '(')
	if i < 0 || !strings.HasSuffix(fetch, ")") {
		return httpCond{}, "", false
	}
	name, list := fetch[:i], fetch[i+1:len(fetch)-1]
	if name != "http_auth" && name != "http_auth_group" {
		return httpCond{}, "", false
	}
	ul := p.lists[list]
	if ul == nil {
		return httpCond{}, fmt.Sprintf("%s: no userlist %s", fetch, list), true
	}
	if len(ul.bad) > 0 {
		b := ul.bad[0]
		return httpCond{}, fmt.Sprintf("userlist %s: %s at line %d", list, b.directive, b.pos.Line), true
	}
	c := httpCond{subject: "auth", userlist: siteName(list)}
	rest := ws[1:]
	if len(rest) > 0 && rest[0] == "-m" && len(rest) > 1 && rest[1] == "str" {
		rest = rest[2:]
	}
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	switch {
	case name == "http_auth" && len(rest) > 0:
		return httpCond{}, fmt.Sprintf("%s with a pattern", fetch), true
	case name == "http_auth_group" && len(rest) == 0:
		return httpCond{}, fmt.Sprintf("%s without a group", fetch), true
	}
	for _, g := range rest {
		if strings.HasPrefix(g, "-") {
			return httpCond{}, fmt.Sprintf("%s %s", fetch, g), true
		}
		if !slices.Contains(ul.groups, g) {
			return httpCond{}, fmt.Sprintf("%s %s: no such group", fetch, g), true
		}
		c.values = append(c.values, siteName(g))
	}
	return c, "", true
}

// criterion is httpCriterion with the auth fetches, which need the
// section's userlists.
func (p *hapProxy) criterion(ws []string) (httpCond, string) {
	if len(ws) > 0 {
		if c, why, ok := p.authCriterion(ws); ok {
			return c, why
		}
	}
	return httpCriterion(ws)
}

// authAction reads `http-request auth [realm R] [if|unless COND]`; the
// realm defaults to the proxy's name, as HAProxy's does.
func (p *hapProxy) authAction(args []string) (httpRule, []string, string) {
	realm := p.name
	i := 0
	if len(args) >= 2 && args[0] == "realm" {
		realm, i = args[1], 2
	}
	if i < len(args) && args[i] != "if" && args[i] != "unless" {
		return httpRule{}, nil, "auth option " + args[i]
	}
	if strings.ContainsAny(realm, "\"\\") || strings.ContainsFunc(realm, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return httpRule{}, nil, fmt.Sprintf("realm %q (a quote, backslash or control character)", realm)
	}
	return httpRule{auth: &httpAuth{realm: realm}}, args[i:], ""
}

type httpAuth struct{ realm string }

// siteUserlists are the lists the imported services' rules name, as the
// site writes them; the others are named as not imported.
func (c *hapConfig) siteUserlists(svcs []*service, w *warnings) []*hapUserlist {
	named := map[string]bool{}
	for _, s := range svcs {
		if s.http == nil {
			continue
		}
		for _, r := range s.http.rules {
			for _, cd := range r.when {
				if cd.subject == "auth" {
					named[cd.userlist] = true
				}
			}
		}
	}
	var out []*hapUserlist
	for _, name := range c.userlistOrder {
		ul := c.userlists[name]
		if named[siteName(name)] {
			out = append(out, ul)
			for _, u := range ul.users {
				if u.insecure {
					w.add(u.pos, "user %s insecure-password: imported as a SHA-512 crypt hash made at import time; the site holds no password in clear", u.name)
				}
			}
			continue
		}
		why := "no imported rule names it"
		if len(ul.bad) > 0 {
			why = fmt.Sprintf("%s at line %d", ul.bad[0].directive, ul.bad[0].pos.Line)
		}
		w.add(ul.pos, "userlist %s: not imported (%s)", name, why)
	}
	return out
}

// userlistsField writes site.userlists.
func userlistsField(lists []*hapUserlist) cfield {
	v := &cstruct{}
	for _, ul := range lists {
		s := &cstruct{}
		if len(ul.groups) > 0 {
			var gs []string
			for _, g := range ul.groups {
				gs = append(gs, siteName(g))
			}
			s.add("groups", cstrs(gs))
		}
		users := &cstruct{}
		for _, u := range ul.users {
			us := inline(fld("password_hash", cstr(u.hash)))
			if len(u.groups) > 0 {
				var gs []string
				for _, g := range u.groups {
					gs = append(gs, siteName(g))
				}
				us.fields = append(us.fields, fld("groups", cstrs(gs)))
			}
			users.fields = append(users.fields, cfield{label: u.name, val: us})
		}
		s.add("users", users)
		v.fields = append(v.fields, cfield{label: siteName(ul.name), val: s, doc: []string{"From userlist " + ul.name + " (" + ul.pos.String() + ")."}})
	}
	return fld("userlists", v)
}
