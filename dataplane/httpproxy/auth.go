package httpproxy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/GehirnInc/crypt"
	_ "github.com/GehirnInc/crypt/md5_crypt"    // $1$
	_ "github.com/GehirnInc/crypt/sha256_crypt" // $5$
	_ "github.com/GehirnInc/crypt/sha512_crypt" // $6$
	"golang.org/x/crypto/bcrypt"
)

// HTTP basic authentication, HAProxy's userlist sections with the
// http_auth(L) and http_auth_group(L) G… fetches and the `http-request
// auth [realm R]` action: a condition on the credentials of a request
// (SubjAuth) and an action that answers 401 asking for them (Rule.Auth).
//
// Passwords are crypt(3) hashes only, never plain text: SHA-512 ($6$),
// SHA-256 ($5$), MD5 ($1$) crypt and bcrypt ($2a$, $2b$, $2y$), the hashes
// HAProxy's `password` takes through the system's crypt. Checking one is
// slow on purpose (5000 rounds of SHA-512): HAProxy runs crypt on every
// request, holding its thread; here a successful check is remembered in a
// bounded cache keyed by a digest of the hash and the password, so that a
// client sending the same credentials on every request costs one check,
// while a wrong password is checked every time (it is never cached) and a
// changed hash misses the cache.

// Userlist is HAProxy's userlist: users with their password hash, and
// groups.
type Userlist struct {
	// Groups are the list's groups; a user's groups must be among them.
	Groups []string `json:"groups,omitempty"`
	// Users by name.
	Users map[string]User `json:"users"`
}

// User is one user of a list.
type User struct {
	// Hash is the password's crypt(3) hash.
	Hash string `json:"hash"`
	// Groups the user belongs to.
	Groups []string `json:"groups,omitempty"`
}

// Auth is the action that asks for credentials: 401 with
// `WWW-Authenticate: Basic realm="Realm"`.
type Auth struct {
	// Realm defaults to the service's name (HAProxy's: the proxy's).
	Realm string `json:"realm,omitempty"`
}

// maxAuthHeader bounds the Authorization header a request may carry to
// be checked at all: a longer one is no credentials (the request is
// refused as if it sent none), so a client cannot make the proxy decode
// and hash megabytes.
const maxAuthHeader = 4096

// authCacheSize bounds the successful checks remembered.
const authCacheSize = 4096

// CheckHash reports whether hash is a crypt(3) hash the proxy can verify.
func CheckHash(hash string) error {
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("bcrypt hash: %w", err)
		}
		return nil
	case strings.HasPrefix(hash, "$1$"), strings.HasPrefix(hash, "$5$"), strings.HasPrefix(hash, "$6$"):
		c := crypt.NewFromHash(hash)
		if _, err := c.Cost(hash); err != nil {
			return fmt.Errorf("crypt hash: %w", err)
		}
		// The checksum must be there: a hash cut short verifies nothing.
		if i := strings.LastIndexByte(hash, '$'); i < 3 || len(hash)-i-1 < 22 {
			return errors.New("crypt hash without its checksum")
		}
		return nil
	}
	return errors.New("not a crypt hash gitgw verifies ($6$, $5$, $1$, $2a$, $2b$, $2y$)")
}

// verifyHash checks password against hash.
func verifyHash(hash, password string) bool {
	if strings.HasPrefix(hash, "$2") {
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
	}
	if !crypt.IsHashSupported(hash) {
		return false
	}
	return crypt.NewFromHash(hash).Verify(hash, []byte(password)) == nil
}

// validateUserlists reports the problems of the lists and of the auth
// conditions and actions of the rules.
func (h *HTTP) validateUserlists() []error {
	var errs []error
	for _, name := range sortedKeys(h.Userlists) {
		ul := h.Userlists[name]
		for _, un := range sortedKeys(ul.Users) {
			u := ul.Users[un]
			if err := CheckHash(u.Hash); err != nil {
				errs = append(errs, fmt.Errorf("http: userlist %q: user %q: %w", name, un, err))
			}
			for _, g := range u.Groups {
				if !slices.Contains(ul.Groups, g) {
					errs = append(errs, fmt.Errorf("http: userlist %q: user %q: group %q is not one of the list's groups", name, un, g))
				}
			}
		}
	}
	return errs
}

// validateAuthCond checks an auth condition against the lists.
func (h *HTTP) validateAuthCond(c Cond) error {
	ul, ok := h.Userlists[c.Userlist]
	if !ok {
		return fmt.Errorf("auth: no userlist %q", c.Userlist)
	}
	for _, g := range c.Values {
		if !slices.Contains(ul.Groups, g) {
			return fmt.Errorf("auth: userlist %q has no group %q", c.Userlist, g)
		}
	}
	return nil
}

// validateRealm checks a realm: it is written between quotes in a header.
func validateRealm(realm string) error {
	if strings.ContainsAny(realm, "\"\\") || strings.ContainsFunc(realm, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("auth: realm %q: no quote, backslash or control character", realm)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// authList is a compiled Userlist.
type authList struct {
	users map[string]User
	cache *authCache
}

// check returns the request's user when its credentials are valid.
func (l *authList) check(r *http.Request) (User, bool) {
	if len(r.Header.Values("Authorization")) != 1 || len(r.Header.Get("Authorization")) > maxAuthHeader {
		return User{}, false
	}
	name, password, ok := r.BasicAuth()
	if !ok {
		return User{}, false
	}
	u, ok := l.users[name]
	if !ok {
		return User{}, false
	}
	key := authKey(u.Hash, password)
	if l.cache.has(key) {
		return u, true
	}
	if !verifyHash(u.Hash, password) {
		return User{}, false
	}
	l.cache.add(key)
	return u, true
}

// matchAuth is an auth condition: valid credentials of the list, of a
// user in one of the groups when the condition names groups.
func (c *cond) matchAuth(r *http.Request) bool {
	u, ok := c.auth.check(r)
	if !ok {
		return false
	}
	if len(c.Values) == 0 {
		return true
	}
	for _, g := range c.Values {
		if slices.Contains(u.Groups, g) {
			return true
		}
	}
	return false
}

// authKey is what the cache holds of a successful check: a digest, so
// that no password stays in memory in clear.
func authKey(hash, password string) [32]byte {
	return sha256.Sum256([]byte(hash + "\x00" + password))
}

// authCache remembers successful checks, at most authCacheSize: when
// full, the oldest half is forgotten.
type authCache struct {
	mu    sync.Mutex
	keys  map[[32]byte]uint64
	clock uint64
}

func newAuthCache() *authCache { return &authCache{keys: map[[32]byte]uint64{}} }

func (c *authCache) has(k [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.keys[k]
	return ok
}

func (c *authCache) add(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.keys) >= authCacheSize {
		cut := c.clock - authCacheSize/2
		for key, t := range c.keys {
			if t < cut {
				delete(c.keys, key)
			}
		}
	}
	c.clock++
	c.keys[k] = c.clock
}

// askAuth answers 401 as HAProxy does.
func askAuth(w http.ResponseWriter, realm string) {
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = fmt.Fprint(w, "<html><body><h1>401 Unauthorized</h1>\nYou need a valid user and password to access this content.\n</body></html>\n")
}

// CloneUserlists deep-copies m.
func CloneUserlists(m map[string]Userlist) map[string]Userlist {
	if m == nil {
		return nil
	}
	out := make(map[string]Userlist, len(m))
	for name, ul := range m {
		c := Userlist{Groups: slices.Clone(ul.Groups), Users: make(map[string]User, len(ul.Users))}
		for un, u := range ul.Users {
			c.Users[un] = User{Hash: u.Hash, Groups: slices.Clone(u.Groups)}
		}
		out[name] = c
	}
	return out
}

// DescribeUserlists spells the lists for plans without their hashes: the
// users and groups, and a digest of everything, so that a changed
// password changes the plan.
func DescribeUserlists(m map[string]Userlist) []string {
	var out []string
	for _, name := range sortedKeys(m) {
		ul := m[name]
		h := sha256.New()
		var users []string
		for _, un := range sortedKeys(ul.Users) {
			u := ul.Users[un]
			users = append(users, un)
			fmt.Fprintf(h, "%s\x00%s\x00%s\x00", un, u.Hash, strings.Join(u.Groups, ","))
		}
		fmt.Fprintf(h, "%s", strings.Join(ul.Groups, ","))
		out = append(out, fmt.Sprintf("userlist %s users %s groups %s digest %x", name, strings.Join(users, ","), strings.Join(ul.Groups, ","), h.Sum(nil)[:6]))
	}
	return out
}
