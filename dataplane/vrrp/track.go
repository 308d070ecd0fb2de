package vrrp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// maxCheckHeader bounds the status line and headers an http check reads.
const maxCheckHeader = 16 << 10

// checkClient is the http checks' client. A backend is a peer, not a
// trusted party, and the checks run in the process that keeps VRRP going:
// the status line and headers it may send are capped (maxCheckHeader, not
// net/http's 10 MiB), the body is never read, no connection is kept, no
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
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Target, nil)
		if err != nil {
			return err
		}
		resp, err := checkClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close() // unread: the status is the whole answer
		if resp.StatusCode != c.ExpectStatus {
			return fmt.Errorf("status %d, want %d", resp.StatusCode, c.ExpectStatus)
		}
		return nil
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
