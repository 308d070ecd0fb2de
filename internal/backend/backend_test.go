package backend

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestServe: the backend names itself on every path and answers "ok" on
// /health; it stops cleanly when its context ends.
func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, "127.0.0.1:8080", "gw1") }()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get("http://" + l.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get("/"); got != "gitgw backend 127.0.0.1:8080 on gw1\n" {
		t.Errorf("/ = %q", got)
	}
	if got := get("/any/path"); got != "gitgw backend 127.0.0.1:8080 on gw1\n" {
		t.Errorf("/any/path = %q", got)
	}
	if got := get("/health"); got != "ok\n" {
		t.Errorf("/health = %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
}

// TestRunRefuses: a port out of range, and one taken, are errors.
func TestRunRefuses(t *testing.T) {
	for _, port := range []int{0, 65536} {
		if err := Run(context.Background(), "127.0.0.1", port); err == nil || !strings.Contains(err.Error(), "want 1-65535") {
			t.Errorf("port %d: %v", port, err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := Run(context.Background(), "127.0.0.1", l.Addr().(*net.TCPAddr).Port); err == nil || !strings.HasPrefix(err.Error(), "backend: listen tcp") {
		t.Errorf("a port taken: %v", err)
	}
}
