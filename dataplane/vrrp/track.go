package vrrp

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// maxCheckHeader bounds the status line and headers an http check reads.
const maxCheckHeader = 16 << 10

// maxCheckBody bounds what an http check's expect_string and a tcp-expect
// check search: a backend may send without end, and the check runs in the
// process that keeps VRRP going.
const maxCheckBody = 64 << 10

// checkClient is the http checks' client. A backend is a peer, not a
// trusted party, and the checks run in the process that keeps VRRP going:
// the status line and headers it may send are capped (maxCheckHeader, not
// net/http's 10 MiB), no connection is kept, no
// proxy from the environment is used, and a redirect is not followed (the
// status the check asks for is the backend's own, as keepalived's HTTP_GET
// and the proxy's http checks take it). The check's timeout bounds the
// rest.
var checkClient = &http.Client{
	Transport: &http.Transport{
		Proxy: nil, DisableKeepAlives: true, DisableCompression: true,
		MaxResponseHeaderBytes: maxCheckHeader,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// checkSet runs an instance's checks, one goroutine each, until stopped.
type checkSet struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startChecks(in *instance) *checkSet {
	ctx, cancel := context.WithCancel(context.Background())
	cs := &checkSet{cancel: cancel}
	for _, c := range in.cfg.TrackChecks {
		cs.wg.Add(1)
		go func() {
			defer cs.wg.Done()
			runCheck(ctx, c, in.e.opts.ServiceHealthy, func(ok bool) { in.checkResult(c.Name, ok) })
		}()
	}
	return cs
}

func (cs *checkSet) stop() {
	if cs == nil {
		return
	}
	cs.cancel()
	cs.wg.Wait()
}

// runCheck probes every Interval and reports a state change only after
// Fall consecutive failures or Rise consecutive successes (hysteresis); a
// check starts healthy.
func runCheck(ctx context.Context, c Check, svc func(string) bool, report func(ok bool)) {
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	healthy := true
	run := 0 // consecutive results contradicting the current state
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, c.Timeout)
		err := probe(pctx, c, svc)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if (err == nil) == healthy {
			run = 0
			continue
		}
		run++
		need := c.Fall
		if !healthy {
			need = c.Rise
		}
		if run >= need {
			healthy, run = !healthy, 0
			report(healthy)
		}
	}
}

func probe(ctx context.Context, c Check, svc func(string) bool) error {
	switch c.Kind {
	case CheckTCP:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.Target)
		if err != nil {
			return err
		}
		return conn.Close()
	case CheckHTTP:
		return probeHTTP(ctx, c)
	case CheckTCPExpect:
		return probeTCPExpect(ctx, c)
	case CheckCommand:
		return exec.CommandContext(ctx, c.Command[0], c.Command[1:]...).Run()
	case CheckICMP:
		return pingOnce(ctx, c.Target)
	case CheckService:
		if svc == nil || !svc(c.Target) {
			return fmt.Errorf("service %s has no healthy server", c.Target)
		}
		return nil
	}
	return fmt.Errorf("check kind %q unsupported", c.Kind)
}

// pingOnce sends one ICMP echo to target (an IPv4 or IPv6 address) and
// waits for the matching reply until ctx ends.
func pingOnce(ctx context.Context, target string) error {
	dst, err := netip.ParseAddr(target)
	if err != nil {
		return fmt.Errorf("icmp target %q: %w", target, err)
	}
	network, proto := "ip4:icmp", 1
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, proto, typ, reply = "ip6:ipv6-icmp", 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	conn, err := icmp.ListenPacket(network, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	id := int(rand.Uint32() & 0xffff)
	msg, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("gitgw-vrrp")}}).Marshal(nil)
	if err != nil {
		return err
	}
	if _, err := conn.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id {
			if a, ok := from.(*net.IPAddr); ok {
				if fa, ok := netip.AddrFromSlice(a.IP); ok && fa.Unmap() == dst.Unmap() {
					return nil
				}
			}
		}
	}
}

// probeHTTP sends the check's request and compares the status and, with
// an expect_string, the start of the body.
func probeHTTP(ctx context.Context, c Check) error {
	method := c.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Target, nil)
	if err != nil {
		return err
	}
	if c.Host != "" {
		req.Host = c.Host
	}
	resp, err := checkClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != c.ExpectStatus {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, c.ExpectStatus)
	}
	if c.ExpectString == "" {
		return nil // the status is the whole answer: the body stays unread
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckBody))
	if err != nil && !strings.Contains(string(body), c.ExpectString) {
		return fmt.Errorf("reading the body: %w", err)
	}
	if !strings.Contains(string(body), c.ExpectString) {
		return fmt.Errorf("body (first %d bytes) lacks %q", len(body), c.ExpectString)
	}
	return nil
}

// probeTCPExpect connects, sends Send (if any) and reads until Expect
// shows up, the peer closes, maxCheckBody bytes came, or ctx ends.
func probeTCPExpect(ctx context.Context, c Check) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Target)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if c.Send != "" {
		if _, err := io.WriteString(conn, c.Send); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < maxCheckBody {
		n, err := conn.Read(buf[:min(len(buf), maxCheckBody-len(got))])
		got = append(got, buf[:n]...)
		if strings.Contains(string(got), c.Expect) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("expect %q: %w after %d bytes", c.Expect, err, len(got))
		}
	}
	return fmt.Errorf("expect %q: not in the first %d bytes", c.Expect, len(got))
}
