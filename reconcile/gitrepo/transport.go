package gitrepo

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Credentials say how to reach a remote. Which fields matter depends on the
// URL's scheme: none for a local path or file://; SSHKeyFile and
// KnownHostsFile for ssh://; TokenFile and CAFile for https://.
type Credentials struct {
	// SSHKeyFile is a private key (OpenSSH or PEM format, no passphrase).
	SSHKeyFile string
	// KnownHostsFile lists the accepted host keys; the server's key is
	// always checked. Empty means $SSH_KNOWN_HOSTS, ~/.ssh/known_hosts and
	// /etc/ssh/ssh_known_hosts.
	KnownHostsFile string
	// TokenFile holds an access token, sent as the basic-auth password
	// (re-read on every connection, so it can be rotated in place).
	TokenFile string
	// CAFile is an extra PEM bundle of trusted certificate authorities.
	CAFile string
	// Timeout bounds connecting to an ssh server (default 20 s).
	Timeout time.Duration
}

// remoteAccess is what go-git needs for one operation on one remote.
type remoteAccess struct {
	auth     transport.AuthMethod
	caBundle []byte
}

// isLocal reports whether u names a repository on this machine.
func isLocal(u string) bool {
	if strings.HasPrefix(u, "file://") {
		return true
	}
	if strings.Contains(u, "://") {
		return false
	}
	// scp-like ssh syntax: user@host:path.
	if i := strings.Index(u, ":"); i > 0 && !strings.Contains(u[:i], "/") {
		return false
	}
	return true
}

// localGitDir is the directory holding the refs of a local repository URL:
// the repository itself when bare, its .git otherwise.
func localGitDir(u string) (string, error) {
	if !isLocal(u) {
		return "", fmt.Errorf("%s is not a local repository", u)
	}
	p := strings.TrimPrefix(u, "file://")
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(filepath.Join(p, ".git")); err == nil && st.IsDir() {
		return filepath.Join(p, ".git"), nil
	}
	return p, nil
}

// checkScheme refuses credentials that would cross the network in the
// clear: a token (--token-file) is sent as a basic-auth password, readable
// by anyone on the path of a plain http:// connection.
func (c Credentials) checkScheme(rawURL string) error {
	if c.TokenFile == "" || isLocal(rawURL) {
		return nil
	}
	if u, err := url.Parse(rawURL); err == nil && strings.EqualFold(u.Scheme, "http") {
		return fmt.Errorf("refusing to send the token of --token-file %s over plain http:// (%s): use https://", c.TokenFile, redact(rawURL))
	}
	return nil
}

// access builds the go-git authentication for rawURL from c.
func (c Credentials) access(rawURL string) (remoteAccess, error) {
	var ra remoteAccess
	if err := c.checkScheme(rawURL); err != nil {
		return ra, err
	}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return ra, fmt.Errorf("--ca-file: %w", err)
		}
		ra.caBundle = b
	}
	if isLocal(rawURL) {
		return ra, nil
	}
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return ra, fmt.Errorf("--repo %q: %w", redact(rawURL), err)
	}
	switch ep.Protocol {
	case "ssh":
		if c.SSHKeyFile == "" {
			return ra, errors.New("ssh: no private key for an ssh:// repository: give its file with --ssh-key FILE")
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, c.SSHKeyFile, "")
		if err != nil {
			return ra, fmt.Errorf("ssh: --ssh-key %s: %w", c.SSHKeyFile, err)
		}
		files, err := c.knownHostsFiles()
		if err != nil {
			return ra, err
		}
		db, err := gitssh.NewKnownHostsDb(files...)
		if err != nil {
			return ra, fmt.Errorf("ssh: known hosts %s: %w", strings.Join(files, ", "), err)
		}
		port := ep.Port
		if port == 0 {
			port = 22
		}
		keys.HostKeyCallback = db.HostKeyCallback()
		keys.HostKeyAlgorithms = db.HostKeyAlgorithms(net.JoinHostPort(ep.Host, strconv.Itoa(port)))
		timeout := c.Timeout
		if timeout <= 0 {
			timeout = 20 * time.Second
		}
		ra.auth = &sshAuth{PublicKeys: keys, timeout: timeout}
	case "https", "http":
		if c.TokenFile != "" {
			b, err := os.ReadFile(c.TokenFile)
			if err != nil {
				return ra, fmt.Errorf("https: --token-file: %w", err)
			}
			user := ep.User
			if user == "" {
				user = "gitgw"
			}
			ra.auth = &githttp.BasicAuth{Username: user, Password: strings.TrimSpace(string(b))}
		}
	default:
		return ra, fmt.Errorf("--repo %s: unsupported scheme %q: give a local path, file://, ssh:// or https:// URL", redact(rawURL), ep.Protocol)
	}
	return ra, nil
}

// knownHostsFiles are the files holding the host keys an ssh server may
// present: --known-hosts, or else the files ssh itself reads
// ($SSH_KNOWN_HOSTS, ~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts) that
// exist. Checked here rather than left to go-git, whose error for a
// missing file asks for an environment variable instead of the flag.
func (c Credentials) knownHostsFiles() ([]string, error) {
	if c.KnownHostsFile != "" {
		if _, err := os.Stat(c.KnownHostsFile); err != nil {
			return nil, fmt.Errorf("ssh: --known-hosts: %w (write the server's host key there, e.g. ssh-keyscan HOST > FILE)", err)
		}
		return []string{c.KnownHostsFile}, nil
	}
	candidates := filepath.SplitList(os.Getenv("SSH_KNOWN_HOSTS"))
	if len(candidates) == 0 {
		if home, err := os.UserHomeDir(); err == nil {
			candidates = append(candidates, filepath.Join(home, ".ssh", "known_hosts"))
		}
		candidates = append(candidates, "/etc/ssh/ssh_known_hosts")
	}
	var found []string
	for _, f := range candidates {
		if _, err := os.Stat(f); err == nil {
			found = append(found, f)
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("ssh: no known_hosts file (looked for %s): give the server's host key in a file with --known-hosts FILE", strings.Join(candidates, ", "))
	}
	return found, nil
}

// explain adds, to what go-git says when a remote answers no, the flag
// that changes the answer.
func explain(err error) error {
	var ke *knownhosts.KeyError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%w (check --repo)", err)
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return fmt.Errorf("%w (give a token with --token-file for https://, a key with --ssh-key for ssh://)", err)
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%w (check the token of --token-file, or the key of --ssh-key)", err)
	case errors.As(err, &ke) && len(ke.Want) == 0:
		return fmt.Errorf("%w (the server's host key is not in the known_hosts file: add it there, or give another with --known-hosts)", err)
	case errors.As(err, &ke):
		return fmt.Errorf("%w (the server's host key differs from the one of the known_hosts file, --known-hosts: check it before trusting the new one)", err)
	}
	return err
}

// sshAuth is go-git's public-key authentication with a connect timeout.
type sshAuth struct {
	*gitssh.PublicKeys
	timeout time.Duration
}

func (a *sshAuth) ClientConfig() (*ssh.ClientConfig, error) {
	cfg, err := a.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = a.timeout
	return cfg, nil
}

// redact removes a password from a URL, for logs and errors.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// IsLocalURL reports whether a read of u reads a repository on this
// machine in place (a path or file://), rather than fetching it.
func IsLocalURL(u string) bool { return isLocal(u) }
