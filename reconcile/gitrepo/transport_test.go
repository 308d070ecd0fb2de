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
}
