package reconcile

import (
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/healthcheck"
	"github.com/gitgw/gitgw/dataplane/kernlb"
)

// KernService is one kernel-forwarded service of the site as the kernel
// load balancer carries it: one kernlb service per bind and per firewall
// mark (as keepalived makes one IPVS service per entry of a
// virtual_server_group), with what the adapter keeps beside it (the
// site's names, the health check).
type KernService struct {
	// Site is the service's name in the site; Bind its index in binds,
	// or, when Mark is not 0, in fwmarks.
	Site string
	Bind int
	Mark uint32
	// Servers are the site's server names, in the order of LB.Servers.
	Servers []string
	// Own are the servers' own parts in the check: unchecked, or checked
	// at their own address, port or targets.
	Own []healthcheck.ServerCheck
	// Disabled marks servers in maintenance: out of the tables, unchecked.
	Disabled []bool
	// Check is the service's health check with its defaults; nil: none.
	Check *healthcheck.Check
	LB    kernlb.Service
}

// KernLBConfig translates the node's nat, fnat and dr services (those that name
// this node, or no node) into the kernel load balancer's services, sorted
// by site name then bind, so that it compares deterministically. The
// guardrail service-feature-built refuses, with the site's position, what
// cannot be translated; the errors here are for hand-built specs.
func KernLBConfig(n *spec.Node) ([]KernService, error) {
	var out []KernService
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(n.Services)) {
		s := n.Services[name]
		if !s.Kernel() || len(s.Nodes) > 0 && !slices.Contains(s.Nodes, n.Name) {
			continue
		}
		ks, err := kernServices(name, s, spec.HeldLocalAddresses(n.Node, s))
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", name, err))
		}
		out = append(out, ks...)
	}
	return out, errors.Join(errs...)
}

// KernScheduler maps the site's balance to a kernel scheduler: roundrobin
// is weighted (wrr), source is a source-address hash (sh), maglev is
// Maglev. leastconn and first need per-connection counts the kernel does
// not keep: false.
func KernScheduler(balance string) (kernlb.Scheduler, bool) {
	switch balance {
	case "", "roundrobin":
		return kernlb.WeightedRoundRobin, true
	case "source":
		return kernlb.SourceHash, true
	case "maglev":
		return kernlb.Maglev, true
	}
	return "", false
}

// KernRatePerSecond converts the site's max_rate_per_source ("100/s",
// "600/m", "50/10s") to new flows per second, what nftables' limit counts;
// false when that is not a whole number.
func KernRatePerSecond(rate string) (int, error) {
	n, per, err := spec.ParseRate(rate)
	if err != nil {
		return 0, err
	}
	if (int64(n)*int64(time.Second))%int64(per) != 0 || int64(n)*int64(time.Second) < int64(per) {
		return 0, fmt.Errorf("rate %q: kernel modes count whole new flows per second; %d per %v is not", rate, n, per)
	}
	return int(int64(n) * int64(time.Second) / int64(per)), nil
}

// kernServices translates one site service; local are the fnat local
// addresses this node holds (the guardrail service-feature-built makes
// sure there is one).
func kernServices(name string, s spec.Service, local []netip.Addr) ([]KernService, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	base := kernlb.Service{
		Protocol:    kernlb.Protocol(s.Protocol),
		Mode:        kernlb.Mode(s.Mode),
		Interface:   s.Interface,
		Persistence: s.Persistence.D(),
	}
	if base.Protocol == "" {
		base.Protocol = kernlb.TCP
	}
	if base.Mode != kernlb.DR {
		base.Interface = ""
	}
	if base.Mode == kernlb.FNAT {
		base.LocalAddresses = local
	}
	sched, ok := KernScheduler(s.Balance)
	if !ok {
		bad("balance %q: the kernel keeps no per-server connection counts; use roundrobin, source or maglev", s.Balance)
	}
	base.Scheduler = sched
	if r := s.Source; r != nil {
		base.Allow, base.Deny = kernPrefixes("allow", r.Allow, bad), kernPrefixes("deny", r.Deny, bad)
		base.Limits.ConnPerSource = r.MaxConnPerSource
		if r.MaxRatePerSource != "" {
			n, err := KernRatePerSecond(r.MaxRatePerSource)
			if err != nil {
				bad("source: max_rate_per_source: %w", err)
			}
			base.Limits.RatePerSource, base.Limits.Burst = n, n
		}
	}
	var ck *healthcheck.Check
	if s.Check != nil {
		c, err := proxyCheck(s.Check)
		if err != nil {
			bad("%w", err)
		}
		if c != nil {
			ck = c.WithDefaults()
		}
	}
	var names []string
	var own []healthcheck.ServerCheck
	var disabled []bool
	var servers []kernlb.Server
	for _, sn := range slices.Sorted(maps.Keys(s.Servers)) {
		sv := s.Servers[sn]
		ap, err := sv.AddrPort()
		if err != nil {
			bad("server %s: address %q: kernel modes forward to an address, not a name: %w", sn, sv.Address, err)
			continue
		}
		w := sv.Weight
		if sv.Drain {
			w = 0 // LVS's quiescent: existing flows stay, new ones go elsewhere
		}
		servers = append(servers, kernlb.Server{Address: ap.Addr(), Port: ap.Port(), Weight: w, Backup: sv.Backup, Down: sv.Disabled})
		names = append(names, sn)
		o, err := serverCheck(sv)
		if err != nil {
			bad("server %s: %w", sn, err)
		}
		own = append(own, o)
		disabled = append(disabled, sv.Disabled)
	}
	var out []KernService
	n := len(s.Binds) + len(s.Fwmarks)
	for i, b := range s.Binds {
		ap, err := netip.ParseAddrPort(b)
		if err != nil {
			bad("bind %q: %w", b, err)
			continue
		}
		ks := base
		ks.Name = kernName(name, i, n)
		ks.VIP, ks.Port = ap.Addr(), ap.Port()
		ks.Servers = slices.Clone(servers)
		if ks.Mode == kernlb.DR {
			// DR cannot change the port: the server's port is the VIP's.
			for j := range ks.Servers {
				if ks.Servers[j].Port == ks.Port {
					ks.Servers[j].Port = 0
				}
			}
		}
		out = append(out, KernService{Site: name, Bind: i, Servers: names, Own: own, Disabled: disabled, Check: ck, LB: ks})
	}
	for i, m := range s.Fwmarks {
		// By mark: every packet of the protocol with the mark, whatever
		// its address; servers without a port keep the client's.
		ks := base
		ks.Name = kernName(name, len(s.Binds)+i, n)
		ks.Mark = m
		ks.Servers = slices.Clone(servers)
		out = append(out, KernService{Site: name, Bind: i, Mark: m, Servers: names, Own: own, Disabled: disabled, Check: ck, LB: ks})
	}
	return out, errors.Join(errs...)
}

func kernPrefixes(list string, cidrs []string, bad func(string, ...any)) []netip.Prefix {
	var out []netip.Prefix
	for i, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				bad("source: %s[%d]: %w", list, i, err)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}

var kernNameOK = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// kernName is the kernlb name of a site service's bind or mark (it names
// the nftables chains and sets): the site's name when it fits kernlb's
// [a-z0-9_-]{1,32}, else a readable prefix and a hash; with several binds
// and marks, "-N" is the index among the binds then the marks.
func kernName(site string, bind, binds int) string {
	n := site
	if binds > 1 {
		n = fmt.Sprintf("%s-%d", site, bind)
	}
	if len(n) <= 32 && kernNameOK.MatchString(n) {
		return n
	}
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", site, bind)
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, site)
	return fmt.Sprintf("%.20s-%08x", strings.TrimLeft(clean, "_-"), h.Sum32())
}
