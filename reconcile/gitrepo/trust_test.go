package gitrepo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/gitremote"
)

// TestSyncVerifiesBeforeCheckout: in strict mode a commit that is not
// signed, or whose tree is refused, is decided on the object store —
// nothing of it is exported, the synced commit and the trust anchor stay
// — and the next signed commit on the last good one syncs. The anchor
// outlives the Source; without one, strict mode does not open.
func TestSyncVerifiesBeforeCheckout(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	keys := t.TempDir()
	trustedSSH, trustedLine := gitremote.SSHSigningKey(t, keys, "trusted")
	strict, err := NewVerifier(VerifierOptions{Mode: VerifyStrict, AllowedSigners: []byte("ops@example.com " + trustedLine + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	r := newSignedRepo(t)
	c0 := r.commitGit("unsigned history before the anchor", false)
	c1 := r.commitSSH("signed", trustedSSH)

	state := t.TempDir()
	anchorFile := filepath.Join(state, "trust-anchor.json")
	opts := Options{URL: r.dir, Dir: filepath.Join(state, "source"), Verifier: strict, AnchorFile: anchorFile}
	if _, err := Open(ctx, opts); err == nil || !strings.Contains(err.Error(), "--trust-anchor COMMIT") {
		t.Fatalf("strict mode without an anchor: Open = %v, want a refusal naming --trust-anchor", err)
	}
	if _, err := Open(ctx, Options{URL: r.dir, Dir: opts.Dir, Verifier: strict, AnchorFile: anchorFile, TrustAnchor: c0[:12]}); err == nil || !strings.Contains(err.Error(), "40-digit") {
		t.Fatalf("an abbreviated anchor: Open = %v, want a refusal", err)
	}
	withFlag := opts
	withFlag.TrustAnchor = c0
	s := openSource(t, withFlag)
	trees := filepath.Join(opts.Dir, "trees")
	if rev, err := s.Sync(ctx); err != nil || rev.Commit != c1 {
		t.Fatalf("Sync = %s, %v; want %s", short(rev.Commit), err, short(c1))
	}
	if got := s.TrustAnchor(); got != c1 {
		t.Fatalf("anchor %s, want %s", short(got), short(c1))
	}
	refused := func(c string, kind error) {
		t.Helper()
		rev, err := s.Sync(ctx)
		var re *RefusedError
		if !errors.Is(err, ErrRefused) || !errors.Is(err, kind) || !errors.As(err, &re) || re.Revision.Commit != c || re.Revision.Dir != "" {
			t.Fatalf("Sync of %s = %+v, %v; want refused: %v", short(c), rev, err, kind)
		}
		if _, err := os.Lstat(filepath.Join(trees, c)); err == nil {
			t.Errorf("the refused commit %s was exported", short(c))
		}
		entries, _ := os.ReadDir(trees)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".export-") {
				t.Errorf("left behind: %s", e.Name())
			}
		}
		if got := s.Synced(); got != c1 {
			t.Errorf("synced moved to %s, want %s", short(got), short(c1))
		}
		if got := s.TrustAnchor(); got != c1 {
			t.Errorf("anchor moved to %s, want %s", short(got), short(c1))
		}
	}
	c2 := r.commitGit("unsigned", false)
	refused(c2, ErrUnsigned)
	c3 := r.commitSSH("signed, on top of the unsigned one", trustedSSH)
	refused(c3, ErrUnsigned) // strict: c2 is in its history

	// The admin drops the unsigned commit: not a rewrite of what synced.
	if _, err := gitremote.Git(r.dir, "reset", "-q", "--hard", c1); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("site.cue", filepath.Join(r.dir, "alias.cue")); err != nil {
		t.Fatal(err)
	}
	if _, err := gitremote.Git(r.dir, "add", "alias.cue"); err != nil {
		t.Fatal(err)
	}
	c4 := r.commitSSH("signed, with a symbolic link", trustedSSH)
	refused(c4, ErrTreeRefused)
	if _, err := gitremote.Git(r.dir, "rm", "-q", "alias.cue"); err != nil {
		t.Fatal(err)
	}
	c5 := r.commitSSH("signed, the link removed", trustedSSH)
	rev, err := s.Sync(ctx)
	if err != nil || rev.Commit != c5 || readFile(t, rev.Dir, "site.cue") == "" {
		t.Fatalf("Sync = %s, %v; want %s", short(rev.Commit), err, short(c5))
	}

	// The anchor is kept: a new Source needs no flag, and starts there.
	s2 := openSource(t, opts)
	if got := s2.TrustAnchor(); got != c5 {
		t.Errorf("reopened: anchor %s, want %s", short(got), short(c5))
	}
	// An anchor of another repository anchors nothing.
	other := opts
	other.URL = gitremote.NewBare(t).Dir
	other.Dir = filepath.Join(t.TempDir(), "source")
	if _, err := Open(ctx, other); err == nil || !strings.Contains(err.Error(), "--trust-anchor") {
		t.Errorf("another repository's anchor: Open = %v, want a refusal", err)
	}
	// A corrupt anchor file is moved aside, loudly, and not trusted.
	if err := os.WriteFile(anchorFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, opts); err == nil || !strings.Contains(err.Error(), "--trust-anchor") {
		t.Errorf("empty anchor file: Open = %v, want a refusal", err)
	}
	if aside, _ := filepath.Glob(anchorFile + ".corrupt-*"); len(aside) != 1 {
		t.Errorf("empty anchor file not moved aside: %v", aside)
	}
	// An anchor the history does not hold refuses every commit.
	missing := opts
	missing.Dir, missing.AnchorFile = filepath.Join(t.TempDir(), "source"), filepath.Join(t.TempDir(), "anchor.json")
	missing.TrustAnchor = strings.Repeat("ab", 20)
	if _, err := openSource(t, missing).Sync(ctx); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not in the history") {
		t.Errorf("unknown anchor: Sync = %v, want a refusal", err)
	}
}

// TestSyncHeadModeChecksTheTip: head mode refuses an unsigned tip before
// exporting it and accepts a signed tip over unsigned history.
func TestSyncHeadModeChecksTheTip(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	trustedSSH, trustedLine := gitremote.SSHSigningKey(t, t.TempDir(), "trusted")
	head, err := NewVerifier(VerifierOptions{Mode: VerifyHead, AllowedSigners: []byte("ops@example.com " + trustedLine + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	r := newSignedRepo(t)
	c1 := r.commitSSH("signed", trustedSSH)
	s := openSource(t, Options{URL: r.dir, Verifier: head})
	if rev, err := s.Sync(ctx); err != nil || rev.Commit != c1 {
		t.Fatalf("Sync = %s, %v", short(rev.Commit), err)
	}
	c2 := r.commitGit("unsigned", false)
	if _, err := s.Sync(ctx); !errors.Is(err, ErrUnsigned) || s.Synced() != c1 {
		t.Fatalf("unsigned %s: Sync = %v, synced %s", short(c2), err, short(s.Synced()))
	}
	c3 := r.commitSSH("signed over unsigned history", trustedSSH)
	if rev, err := s.Sync(ctx); err != nil || rev.Commit != c3 {
		t.Fatalf("Sync = %s, %v; want %s", short(rev.Commit), err, short(c3))
	}
}

func TestTokenRefusedOverHTTP(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Credentials{TokenFile: token}
	for _, u := range []string{"http://git.example.net/site.git", "HTTP://git.example.net/site.git"} {
		if _, err := c.access(u); err == nil || !strings.Contains(err.Error(), "--token-file") {
			t.Errorf("access(%s) = %v, want a refusal naming --token-file", u, err)
		}
	}
	if _, err := c.access("https://git.example.net/site.git"); err != nil {
		t.Errorf("https: %v", err)
	}
	if _, err := (Credentials{}).access("http://git.example.net/site.git"); err != nil {
		t.Errorf("http without a token: %v", err)
	}
	if _, err := Open(testCtx(t), Options{URL: "http://git.example.net/site.git", Dir: t.TempDir(), TokenFile: token}); err == nil || !strings.Contains(err.Error(), "--token-file") {
		t.Errorf("Open over http with a token = %v", err)
	}
}
