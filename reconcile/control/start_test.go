package control

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStartWithTakenPort: a taken web port turns the page and the metrics
// off with an ERROR line, and the control socket is served all the same;
// stop removes the socket.
func TestStartWithTakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	h := newHarness(t)
	var log bytes.Buffer
	path := filepath.Join(t.TempDir(), "gitgw.sock")
	stop, err := h.c.Start(context.Background(), path, taken.Addr().String(), slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := NewClient(path).Status(ctx)
	if err != nil || st.Node != "gw1" {
		t.Fatalf("status over the socket: %+v, %v", st, err)
	}
	if l := log.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "status page and metrics off") {
		t.Errorf("no ERROR line for the taken port; log:\n%s", l)
	}
	stop()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after stop: %v", err)
	}
}
