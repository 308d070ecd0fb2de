package gitremote

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gitgw/gitgw/test/lab"
)

// SSHD is an OpenSSH server started by the test on 127.0.0.1 on a free port.
// It accepts only ClientKey, for the user running the test, and serves git
// over ssh (git-upload-pack / git-receive-pack from PATH).
type SSHD struct {
	// Port is the TCP port on 127.0.0.1.
	Port int
	// User is the login name the server accepts.
	User string
	// ClientKey is the private key file (OpenSSH format, no passphrase)
	// the server authorizes.
	ClientKey string
	// KnownHosts holds the server's real host key for [127.0.0.1]:Port.
	KnownHosts string
	// WrongKnownHosts holds another key for the same host: a client that
	// checks host keys must refuse to talk through it.
	WrongKnownHosts string

	dir    string
	config string
	opts   SSHDOptions

	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// writeKey generates an ed25519 key pair, writes the private half to path
// (mode 0600) and returns the public half in authorized_keys format.
func writeKey(path string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "gitgw-test")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(spub))), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// SSHDOptions change what a server started by StartSSHDWith allows.
type SSHDOptions struct {
	// TCPForwarding lets the client forward ports: `ssh -D` then makes a
	// SOCKS proxy whose connections leave from the server's namespace.
	TCPForwarding bool
}

// StartSSHD starts an sshd for the test and stops it (by PID) when the test
// ends. It needs root (sshd's privilege separation) and /usr/sbin/sshd.
func StartSSHD(t testing.TB) *SSHD {
	t.Helper()
	return StartSSHDWith(t, SSHDOptions{})
}

// StartSSHDWith is StartSSHD with opts.
func StartSSHDWith(t testing.TB, opts SSHDOptions) *SSHD {
	t.Helper()
	lab.RequireRoot(t)
	lab.RequireCommand(t, "sshd", "git", "unshare")
	u, err := user.Current()
	if err != nil {
		t.Fatalf("gitremote: current user: %v", err)
	}
	dir := t.TempDir()
	s := &SSHD{
		User:            u.Username,
		dir:             dir,
		ClientKey:       filepath.Join(dir, "id_client"),
		KnownHosts:      filepath.Join(dir, "known_hosts"),
		WrongKnownHosts: filepath.Join(dir, "known_hosts.wrong"),
		config:          filepath.Join(dir, "sshd_config"),
		opts:            opts,
	}
	hostPub, err := writeKey(filepath.Join(dir, "host_ed25519"))
	if err != nil {
		t.Fatalf("gitremote: host key: %v", err)
	}
	otherPub, err := writeKey(filepath.Join(dir, "other_ed25519"))
	if err != nil {
		t.Fatalf("gitremote: other key: %v", err)
	}
	clientPub, err := writeKey(s.ClientKey)
	if err != nil {
		t.Fatalf("gitremote: client key: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "home"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(clientPub+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(t) })

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("gitremote: free port: %v", err)
		}
		s.Port = port
		host := fmt.Sprintf("[127.0.0.1]:%d", port)
		if err := os.WriteFile(s.KnownHosts, []byte(host+" "+hostPub+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.WrongKnownHosts, []byte(host+" "+otherPub+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("gitremote: sshd would not start: %v", lastErr)
	return nil
}

func (s *SSHD) writeConfig() error {
	forwarding := "no"
	if s.opts.TCPForwarding {
		forwarding = "yes"
	}
	cfg := strings.Join([]string{
		"Port " + strconv.Itoa(s.Port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(s.dir, "host_ed25519"),
		"PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(s.dir, "authorized_keys"),
		"AllowUsers " + s.User,
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"StrictModes no",
		"UsePAM no",
		"UseDNS no",
		"PrintMotd no",
		"X11Forwarding no",
		"AllowTcpForwarding " + forwarding,
		"MaxStartups 200",
		"MaxSessions 200",
		// Sessions get an empty home: no user rc files (slow shell
		// startups), no user git configuration.
		"SetEnv HOME=" + filepath.Join(s.dir, "home") + " GIT_CONFIG_NOSYSTEM=1",
		"LogLevel ERROR",
		"",
	}, "\n")
	return os.WriteFile(s.config, []byte(cfg), 0o600)
}

// command builds the sshd invocation. sshd insists on its privilege
// separation directory (/run/sshd); when the host has none, sshd runs in a
// private mount namespace with a tmpfs on /run, so the host's /run is left
// alone.
func (s *SSHD) command() (*exec.Cmd, error) {
	sshd, err := lab.LookPath("sshd")
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat("/run/sshd"); err == nil && st.IsDir() {
		return exec.Command(sshd, "-D", "-e", "-f", s.config), nil
	}
	unshare, err := lab.LookPath("unshare")
	if err != nil {
		return nil, err
	}
	script := "mount -t tmpfs -o mode=0755 gitgw-sshd /run && mkdir -m 0755 /run/sshd && exec " +
		sshd + " -D -e -f " + s.config
	return exec.Command(unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script), nil
}

func (s *SSHD) start() error {
	if err := s.writeConfig(); err != nil {
		return err
	}
	cmd, err := s.command()
	if err != nil {
		return err
	}
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.stderr, s.done = cmd, stderr, done
	s.mu.Unlock()

	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("sshd exited: %s", stderr.String())
		default:
		}
		if bannerOK(s.Port) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("sshd not answering on port %d: %s", s.Port, stderr.String())
}

func bannerOK(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-")
}

func (s *SSHD) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Stop stops the server (its listener; sessions in flight finish). The port
// stays reserved for Start in the sense that the same configuration is
// reused.
func (s *SSHD) Stop(t testing.TB) {
	t.Helper()
	s.kill()
}

// Start starts a stopped server again on the same port.
func (s *SSHD) Start(t testing.TB) {
	t.Helper()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		// The port may linger briefly after Stop; try again.
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("gitremote: restart sshd: %v", err)
}

// URL is the ssh:// URL of a repository directory on this server.
func (s *SSHD) URL(repoDir string) string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", s.User, s.Port, repoDir)
}

// Log is what sshd wrote to its standard error so far.
func (s *SSHD) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stderr == nil {
		return ""
	}
	return s.stderr.String()
}
