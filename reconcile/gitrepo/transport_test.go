package gitrepo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitgw/gitgw/test/gitremote"
)

// TestCredentialErrorsNameTheFlag: each way the credentials of a remote
// can be wrong fails at Open, before any network is touched, and the error
// names the flag that fixes it (and the file it looked for), never an
// environment variable or a temporary path.
func TestCredentialErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	key, _ := gitremote.SSHSigningKey(t, dir, "id_ed25519")
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMgHoY5lZ7jtGJp1rPH2zGRz4kSSNgK2dYaKxQ3y8rn0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	// No known_hosts of the user's or the system's may stand in for
	// --known-hosts: point ssh's own lookup at a file that does not exist.
	t.Setenv("SSH_KNOWN_HOSTS", filepath.Join(dir, "no_known_hosts"))
	const sshURL = "ssh://git@127.0.0.1:2222/site.git"
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"ssh without a key", Options{URL: sshURL, KnownHostsFile: known},
			[]string{"--ssh-key FILE"}},
		{"ssh key file missing", Options{URL: sshURL, SSHKeyFile: missing, KnownHostsFile: known},
			[]string{"--ssh-key " + missing, "no such file"}},
		{"known hosts file missing", Options{URL: sshURL, SSHKeyFile: key, KnownHostsFile: missing},
			[]string{"--known-hosts", missing, "no such file"}},
		{"no known hosts anywhere", Options{URL: sshURL, SSHKeyFile: key},
			[]string{"--known-hosts FILE", "looked for " + filepath.Join(dir, "no_known_hosts")}},
		{"token file missing", Options{URL: "https://git.example.net/site.git", TokenFile: missing},
			[]string{"--token-file", missing}},
		{"token over plain http", Options{URL: "http://git.example.net/site.git", TokenFile: token},
			[]string{"--token-file", "use https://"}},
		{"CA file missing", Options{URL: "https://git.example.net/site.git", CAFile: missing},
			[]string{"--ca-file", missing}},
		{"unsupported scheme", Options{URL: "ftp://git.example.net/site.git"},
			[]string{"--repo ftp://git.example.net/site.git", `unsupported scheme "ftp"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Dir = filepath.Join(t.TempDir(), "source")
			_, err := Open(testCtx(t), tc.opts)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), "SSH_KNOWN_HOSTS env") {
				t.Errorf("error sends the operator to an environment variable: %v", err)
			}
		})
	}
}

// TestRefNotFoundNamesFlag: a branch the remote does not have is named,
// with the flag that chooses another.
func TestRefNotFoundNamesFlag(t *testing.T) {
	r := gitremote.NewBare(t)
	r.Commit(t, "main", map[string]string{"site.cue": "a: 1\n"}, "one")
	s := openSource(t, Options{URL: r.Dir, Ref: "prod"})
	_, err := s.Sync(testCtx(t))
	if !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("err = %v, want ErrRefNotFound", err)
	}
	if !strings.Contains(err.Error(), `"prod" (choose the branch with --ref)`) {
		t.Errorf("error does not name the branch and --ref: %v", err)
	}
	if _, err := s.RemoteHead(testCtx(t)); err == nil || !strings.Contains(err.Error(), "--ref") {
		t.Errorf("RemoteHead: %v, want an error naming --ref", err)
	}
	none := openSource(t, Options{URL: filepath.Join(t.TempDir(), "nothing-here")})
	if _, err := none.Sync(testCtx(t)); err == nil || !strings.Contains(err.Error(), "repository not found (check --repo)") {
		t.Errorf("a path with no repository: %v, want an error naming --repo", err)
	}
}

// TestCleanSitePath: --path is untrusted: cleaned, relative, never above
// the repository's root.
func TestCleanSitePath(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "", want: ""},
		{in: ".", want: ""},
		{in: "./", want: ""},
		{in: "sites/prod/", want: "sites/prod"},
		{in: "./sites//prod", want: "sites/prod"},
		{in: "sites/../prod", want: "prod"},
		{in: "/etc", err: "not an absolute path"},
		{in: "..", err: "inside the repository (no ..)"},
		{in: "sites/../../x", err: "inside the repository (no ..)"},
		{in: `sites\..\..`, err: "not a directory name"},
		{in: "a\x00b", err: "not a directory name"},
	} {
		got, err := CleanSitePath(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("CleanSitePath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--path")):
			t.Errorf("CleanSitePath(%q) = %q, %v; want an error naming --path and %q", tc.in, got, err, tc.err)
		}
	}
}

// TestSyncSitePath: a site in a subdirectory of a real repository is
// found with Path; without it (or with a wrong one) the commit is refused
// with the path in the repository and the --path that would work, never
// the local copy's temporary path.
func TestSyncSitePath(t *testing.T) {
	ctx := testCtx(t)
	r := gitremote.NewBare(t)
	c1 := r.Commit(t, "main", map[string]string{
		"README":                        "the site is in sites/prod\n",
		"sites/prod/cue.mod/module.cue": "module: \"example.net/site\"\n",
		"sites/prod/site.cue":           "package site\n",
		"other/notes.cue":               "package notes\n",
	}, "one")

	s := openSource(t, Options{URL: r.Dir, Path: "./sites/prod/", Site: true})
	rev, err := s.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rev.Commit != c1 || filepath.Base(rev.Dir) != "prod" || readFile(t, rev.Dir, "site.cue") != "package site\n" {
		t.Fatalf("revision = %+v", rev)
	}
	files, err := s.ReadTree(ctx, c1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files["sites/prod/site.cue"]; !ok || len(files) != 2 {
		t.Errorf("ReadTree with Path holds %d files, want the site's 2 (keyed by their path in the repository)", len(files))
	}

	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"no path", "", []string{"no site at the repository's root", "give it with --path sites/prod"}},
		{"a directory without a site", "sites", []string{`no site at "sites" (--path)`, "--path sites/prod"}},
		{"no such directory", "site/prod", []string{`"site/prod" (--path), which is not a directory`, "--path sites/prod"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "gitgw-src-x")
			s := openSource(t, Options{URL: r.Dir, Path: tc.path, Site: true, Dir: dir})
			_, err := s.Sync(ctx)
			if !errors.Is(err, ErrRefused) || !errors.Is(err, ErrTreeRefused) {
				t.Fatalf("err = %v, want a refused tree", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), dir) {
				t.Errorf("error names the local copy %s: %v", dir, err)
			}
		})
	}
}
