package reconcile

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/healthcheck"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

// proxyCheck translates a service's check from the site to the pool; the
// schema has already checked each field's form.
func proxyCheck(c *spec.ServiceCheck) (*l4proxy.Check, error) {
	ck := &l4proxy.Check{
		Interval: c.Interval.D(), FastInterval: c.FastInterval.D(), DownInterval: c.DownInterval.D(),
		Timeout: c.Timeout.D(), Rise: c.Rise, Fall: c.Fall,
		Port: uint16(c.Port), MaxRead: c.MaxRead,
	}
	var errs []error
	if c.Address != "" {
		a, err := netip.ParseAddr(c.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("check address %q: %w", c.Address, err))
		}
		ck.Address = a
	}
	if t := c.TLS; t != nil {
		ck.TLS = &l4proxy.CheckTLS{ServerName: t.SNI, Verify: t.Verify, CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile}
	}
	switch c.Kind {
	case "http":
		ck.Type, ck.Method, ck.Path, ck.Host = l4proxy.CheckHTTP, c.Method, c.Path, c.Host
		ck.ExpectStatus, ck.Expect, ck.ExpectRegex = c.ExpectStatus, c.ExpectString, c.ExpectRegex
		ck.Headers = checkHeaders(c.Headers)
		var err error
		if ck.Status, err = statusRanges(c.ExpectStatuses); err != nil {
			errs = append(errs, err)
		}
		for i, r := range c.Requests {
			st, err := statusRanges(r.ExpectStatuses)
			if err != nil {
				errs = append(errs, fmt.Errorf("request %d: %w", i, err))
			}
			if len(st) == 0 && r.ExpectStatus != 0 {
				st = []l4proxy.StatusRange{{Lo: r.ExpectStatus, Hi: r.ExpectStatus}}
			}
			ck.Requests = append(ck.Requests, l4proxy.HTTPRequest{Method: r.Method, Path: r.Path, Host: r.Host,
				Headers: checkHeaders(r.Headers), Status: st, Expect: r.ExpectString, ExpectRegex: r.ExpectRegex})
		}
	case "tcp-expect":
		ck.Type, ck.Send, ck.Expect = l4proxy.CheckTCPExpect, c.Send, c.Expect
	case "tcp-check":
		ck.Type = l4proxy.CheckSequence
		for i, s := range c.Steps {
			st, err := checkStep(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("step %d: %w", i, err))
			}
			ck.Steps = append(ck.Steps, st)
		}
	case "smtp":
		ck.Type, ck.Domain = l4proxy.CheckSMTP, c.Domain
	case "mysql":
		ck.Type, ck.User = l4proxy.CheckMySQL, c.User
	case "pgsql":
		ck.Type, ck.User, ck.Database = l4proxy.CheckPgSQL, c.User, c.Database
	case "redis":
		ck.Type, ck.Role = l4proxy.CheckRedis, c.Role
	case "ldap":
		ck.Type = l4proxy.CheckLDAP
	case "command":
		ck.Type, ck.Command = l4proxy.CheckCommand, []string{"/bin/sh", "-c", c.Command}
	default: // "tcp", and "icmp", which the pool checks as a TCP connect
		ck.Type = l4proxy.CheckTCP
	}
	return ck, errors.Join(errs...)
}

// serverCheck translates a server's own part in its service's check, for
// both data planes (the schema has checked each field's form; the
// guardrail service-health-check, how they go together).
func serverCheck(sv spec.Server) (healthcheck.ServerCheck, error) {
	o := healthcheck.ServerCheck{Unchecked: sv.Unchecked, Port: uint16(sv.CheckPort)}
	var errs []error
	if sv.CheckAddress != "" {
		a, err := netip.ParseAddr(sv.CheckAddress)
		if err != nil {
			errs = append(errs, fmt.Errorf("check_address %q: %w", sv.CheckAddress, err))
		}
		o.Addr = a
	}
	for i, t := range sv.CheckTargets {
		ap, err := netip.ParseAddrPort(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("check_targets[%d] %q: %w", i, t, err))
			continue
		}
		o.Targets = append(o.Targets, ap)
	}
	return o, errors.Join(errs...)
}

// checkHeaders orders a site's header map by name, for a stable request
// and plan.
func checkHeaders(h map[string]string) []l4proxy.Header {
	var out []l4proxy.Header
	for _, k := range slices.Sorted(maps.Keys(h)) {
		out = append(out, l4proxy.Header{Name: k, Value: h[k]})
	}
	return out
}

// statusRanges parses "200" and "200-299".
func statusRanges(ss []spec.StatusRange) ([]l4proxy.StatusRange, error) {
	var out []l4proxy.StatusRange
	for _, s := range ss {
		lo, hi, isRange := strings.Cut(string(s), "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || l > h {
			return nil, fmt.Errorf("expect_statuses: %q is not a status or a range", s)
		}
		out = append(out, l4proxy.StatusRange{Lo: l, Hi: h})
	}
	return out, nil
}

func checkStep(s spec.CheckStep) (l4proxy.CheckStep, error) {
	var st l4proxy.CheckStep
	var err error
	switch {
	case s.Connect != nil:
		st.Connect, st.Port, st.NoTLS = true, uint16(s.Connect.Port), !s.Connect.TLS
	case s.Send != nil:
		st.Send = []byte(*s.Send)
	case s.SendHex != "":
		st.Send, err = hex.DecodeString(s.SendHex)
	case s.Expect != nil:
		st.Expect = []byte(*s.Expect)
	case s.ExpectHex != "":
		st.Expect, err = hex.DecodeString(s.ExpectHex)
	default:
		st.ExpectRegex = s.ExpectRegex
	}
	return st, err
}
