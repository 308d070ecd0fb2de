package gitrepo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/gitgw/gitgw/test/gitremote"
	"github.com/gitgw/gitgw/test/lab"
)

type signedRepo struct {
	t    *testing.T
	dir  string
	n    int
	repo *git.Repository
}

func newSignedRepo(t *testing.T) *signedRepo {
	gitremote.RequireGit(t)
	lab.RequireCommand(t, "ssh-keygen")
	dir := filepath.Join(t.TempDir(), "site")
	if _, err := gitremote.Git("", "init", "-q", "-b", "main", dir); err != nil {
		t.Fatal(err)
	}
	r, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &signedRepo{t: t, dir: dir, repo: r}
}

func (r *signedRepo) write() string {
	r.n++
	name := "site.cue"
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte("rev: "+strings.Repeat("1", r.n)+"\n"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return name
}

// commitGit commits with the git CLI; extra are -c options (SSH signing).
func (r *signedRepo) commitGit(msg string, sign bool, extra ...string) string {
	r.t.Helper()
	r.write()
	args := append(extra, "commit", "-q", "-a", "-m", msg)
	if r.n == 1 {
		if _, err := gitremote.Git(r.dir, "add", "-A"); err != nil {
			r.t.Fatal(err)
		}
	}
	if sign {
		args = append(args, "-S")
	}
	if _, err := gitremote.Git(r.dir, args...); err != nil {
		r.t.Fatal(err)
	}
	h, err := gitremote.Git(r.dir, "rev-parse", "HEAD")
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

func (r *signedRepo) commitSSH(msg, key string) string {
	return r.commitGit(msg, true, "-c", "gpg.format=ssh", "-c", "user.signingkey="+key)
}

// commitPGP commits through go-git's signing API.
func (r *signedRepo) commitPGP(msg string, e *openpgp.Entity) string {
	r.t.Helper()
	name := r.write()
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := wt.Add(name); err != nil {
		r.t.Fatal(err)
	}
	sig := &object.Signature{Name: "Site Operator", Email: "operator@example.com", When: time.Now()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig, SignKey: e})
	if err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

func TestVerifySignatures(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	keys := t.TempDir()
	trustedSSH, trustedLine := gitremote.SSHSigningKey(t, keys, "trusted")
	otherSSH, _ := gitremote.SSHSigningKey(t, keys, "other")
	trustedPGP, trustedArmor := gitremote.PGPKey(t, "Trusted")
	otherPGP, _ := gitremote.PGPKey(t, "Other")
	signers := []byte("# site operators\nops@example.com namespaces=\"git\" " + trustedLine + " ops\n")

	r := newSignedRepo(t)
	base := r.commitSSH("base", trustedSSH)
	unsigned := r.commitGit("unsigned", false)
	sshGood := r.commitSSH("ssh trusted", trustedSSH)
	sshOther := r.commitSSH("ssh unknown key", otherSSH)
	pgpGood := r.commitPGP("openpgp trusted", trustedPGP)
	pgpOther := r.commitPGP("openpgp unknown key", otherPGP)
	tip := r.commitSSH("ssh trusted on top", trustedSSH)

	s := openSource(t, Options{URL: r.dir})
	if _, err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	head, err := NewVerifier(VerifierOptions{Mode: VerifyHead, TrustedKeys: trustedArmor, AllowedSigners: signers})
	if err != nil {
		t.Fatal(err)
	}
	strict, err := NewVerifier(VerifierOptions{Mode: VerifyStrict, TrustedKeys: trustedArmor, AllowedSigners: signers})
	if err != nil {
		t.Fatal(err)
	}
	sshOnly, err := NewVerifier(VerifierOptions{Mode: VerifyHead, AllowedSigners: signers})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		v          *Verifier
		since, tip string
		want       error  // nil, ErrUnsigned or ErrUntrusted
		format     string // of the signer when accepted
		refused    string // the commit named in the error
	}{
		{"head unsigned", head, "", unsigned, ErrUnsigned, "", unsigned},
		{"head ssh trusted", head, "", sshGood, nil, "ssh", ""},
		{"head ssh unknown key", head, "", sshOther, ErrUntrusted, "", sshOther},
		{"head openpgp trusted", head, "", pgpGood, nil, "openpgp", ""},
		{"head openpgp unknown key", head, "", pgpOther, ErrUntrusted, "", pgpOther},
		{"head openpgp without keyring", sshOnly, "", pgpGood, ErrUntrusted, "", pgpGood},
		{"head tip trusted over untrusted history", head, base, tip, nil, "ssh", ""},
		{"strict finds the unknown key", strict, sshGood, tip, ErrUntrusted, "", pgpOther},
		{"strict finds the unsigned commit", strict, base, sshGood, ErrUnsigned, "", unsigned},
		{"strict trusted range", strict, sshOther, pgpGood, nil, "openpgp", ""},
		{"strict without base checks the tip", strict, "", tip, nil, "ssh", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer, err := s.Verify(ctx, tc.v, tc.since, tc.tip)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if signer.Format != tc.format || signer.Key == "" || signer.Identity == "" {
					t.Fatalf("signer = %+v, want format %s", signer, tc.format)
				}
				return
			}
			var se *SignatureError
			if !errors.Is(err, tc.want) || !errors.As(err, &se) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if se.Commit != tc.refused {
				t.Fatalf("refused %s, want %s (%v)", short(se.Commit), short(tc.refused), err)
			}
		})
	}
}

func TestParseAllowedSigners(t *testing.T) {
	t.Parallel()
	_, line := gitremote.SSHSigningKey(t, t.TempDir(), "k")
	for _, tc := range []struct {
		name, in string
		ok       bool
		check    func(t *testing.T, s []AllowedSigner)
	}{
		{"plain", "a@example.com " + line, true, func(t *testing.T, s []AllowedSigner) {
			if len(s) != 1 || s[0].Principals[0] != "a@example.com" {
				t.Fatalf("%+v", s)
			}
		}},
		{"quoted principals and options", `"a@example.com,b@example.com" namespaces="git,file",valid-after="20200101" ` + line + " comment", true,
			func(t *testing.T, s []AllowedSigner) {
				if len(s[0].Principals) != 2 || len(s[0].Namespaces) != 2 || s[0].ValidAfter.Year() != 2020 {
					t.Fatalf("%+v", s[0])
				}
			}},
		{"comments and blanks", "# x\n\n  a " + line + "\n", true, nil},
		{"cert authority", "a cert-authority " + line, false, nil},
		{"no key", "a@example.com", false, nil},
		{"bad key", "a ssh-ed25519 AAAA", false, nil},
		{"bad time", `a valid-before="2020" ` + line, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseAllowedSigners([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("ParseAllowedSigners = %v, ok want %v", err, tc.ok)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func TestSSHSignatureValidity(t *testing.T) {
	t.Parallel()
	gitremote.RequireGit(t)
	lab.RequireCommand(t, "ssh-keygen")
	keys := t.TempDir()
	key, line := gitremote.SSHSigningKey(t, keys, "k")
	r := newSignedRepo(t)
	c := r.commitSSH("signed", key)
	s := openSource(t, Options{URL: r.dir})
	if _, err := s.Sync(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, signers string
		ok            bool
	}{
		{"any namespace", "ops " + line, true},
		{"git namespace", `ops namespaces="git" ` + line, true},
		{"other namespace", `ops namespaces="file" ` + line, false},
		{"expired", `ops valid-before="20000101" ` + line, false},
		{"not yet valid", `ops valid-after="29990101" ` + line, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(VerifierOptions{Mode: VerifyHead, AllowedSigners: []byte(tc.signers)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Verify(testCtx(t), v, "", c)
			if (err == nil) != tc.ok {
				t.Fatalf("Verify = %v, ok want %v", err, tc.ok)
			}
		})
	}
}

func TestNewVerifierNeedsKeys(t *testing.T) {
	t.Parallel()
	if _, err := NewVerifier(VerifierOptions{Mode: VerifyStrict}); err == nil {
		t.Fatal("strict mode without keys accepted")
	}
	if _, err := ParseVerifyMode("always"); err == nil {
		t.Fatal("bad mode accepted")
	}
	if v, err := NewVerifier(VerifierOptions{}); err != nil || v.Mode() != VerifyOff {
		t.Fatalf("off: %v %v", v, err)
	}
}
