package lab

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestSwitchConnectsNamespaces(t *testing.T) {
	sw := NewSwitch(t)
	a, b := NewNetns(t, "a"), NewNetns(t, "b")
	sw.Attach(t, a, "eth0", "203.0.113.11/24")
	port := sw.Attach(t, b, "eth0", "203.0.113.12/24")

	var ln net.Listener
	if err := b.Do(func() (err error) {
		ln, err = net.Listen("tcp", "203.0.113.12:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	var dialErr error
	if err := a.Do(func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
		if err == nil {
			c.Close()
		}
		dialErr = err
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if dialErr != nil {
		t.Fatalf("dial across the switch: %v", dialErr)
	}

	sw.SetPort(t, port, false)
	if _, err := a.Try("ping", "-c1", "-W1", "203.0.113.12"); err == nil {
		t.Fatal("ping succeeded across a port that is down")
	}
	if out := a.Run(t, "ip", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "203.0.113.11/24") {
		t.Fatalf("address missing inside namespace: %s", out)
	}
}
