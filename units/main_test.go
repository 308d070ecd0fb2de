package units

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	sdharness "github.com/gitgw/gitgw/test/systemd"
)

// The test binary doubles as the service under test: with
// GITGW_UNITS_SERVE=1 it serves HTTP on 127.0.0.1:<last arg> and answers
// with the port and $VERSION.
const serveEnv = "GITGW_UNITS_SERVE"

// harness is one namespaced systemd for the whole package (nil without
// root or its tools); serverBin is the test binary copied where the
// harness can see it.
var (
	harness    *sdharness.Systemd
	harnessErr error
	serverBin  string
)

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) == "1" {
		serve(os.Args[len(os.Args)-1])
		return
	}
	flag.Parse()
	code := func() int {
		if os.Geteuid() == 0 && !testing.Short() {
			harness, harnessErr = sdharness.Start(context.Background(), sdharness.Options{Name: "units"})
			if harnessErr == nil {
				defer harness.Stop()
				serverBin, harnessErr = copySelf(filepath.Join(harness.StateDir, "bin"))
			}
		}
		code := m.Run()
		if code != 0 && harness != nil {
			fmt.Fprintf(os.Stderr, "--- systemd harness console (tail) ---\n%s\n", tail(harness.Log(), 6000))
		}
		return code
	}()
	os.Exit(code)
}

func serve(port string) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	msg := "port " + port + " version " + os.Getenv("VERSION")
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, msg) }))
}

func copySelf(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := os.ReadFile(self)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, "units-test-server")
	return dst, os.WriteFile(dst, b, 0o755)
}

// needHarness returns the package's systemd or stops the test.
func needHarness(t testing.TB) *sdharness.Systemd {
	t.Helper()
	sdharness.Require(t)
	if harnessErr != nil {
		t.Fatalf("systemd harness: %v", harnessErr)
	}
	if harness == nil {
		t.Fatal("systemd harness not started")
	}
	return harness
}

// dialHarness connects a Conn to the harness; closed at the end of the test.
func dialHarness(t testing.TB, h *sdharness.Systemd) *DBusConn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Dial(ctx, h.Socket())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
	})
	return c
}

// httpGet fetches http://127.0.0.1:port/ inside the harness's netns.
func httpGet(h *sdharness.Systemd, port string) (string, error) {
	var body string
	err := h.Do(func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		body = string(b)
		return err
	})
	if err != nil {
		return "", err
	}
	if i := indexBody(body); i >= 0 {
		body = body[i:]
	}
	return body, nil
}

func indexBody(s string) int {
	for i := 0; i+3 < len(s); i++ {
		if s[i:i+4] == "\r\n\r\n" {
			return i + 4
		}
	}
	return -1
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
