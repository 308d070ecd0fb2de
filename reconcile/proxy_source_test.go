package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/dataplane/l4proxy"
	"github.com/gitgw/gitgw/reconcile/plan"
)

// TestProxySourceRules: the site's source rules reach the pool, the plan
// spells them in words and shows a change to them, and applying them is
// idempotent.
func TestProxySourceRules(t *testing.T) {
	node, _ := proxyTestNode(t)
	web := node.Services["web"]
	web.Source = &spec.SourceRules{
		Allow: []string{"198.51.100.0/24", "2001:db8::/32"}, Deny: []string{"198.51.100.66/32"},
		MaxConnPerSource: 20, MaxRatePerSource: "50/10s",
	}
	node.Services["web"] = web
	cfg, err := ProxyConfig(node)
	if err != nil {
		t.Fatal(err)
	}
	want := &l4proxy.SourceRules{
		Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/32")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("198.51.100.66/32")}, MaxConnPerSource: 20,
		MaxRatePerSource: 50, RatePeriod: 10 * time.Second,
	}
	if got := cfg.Services[0].Source; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("translated source rules %+v, want %+v", got, want)
	}
	const words = "allow only 198.51.100.0/24, 2001:db8::/32; deny 198.51.100.66/32 (deny wins); " +
		"at most 20 connections per source; at most 50 new connections per source per 10s; refused connections are reset"
	if got := l4proxy.ViewService(cfg.Services[0]).Source; got != words {
		t.Errorf("plan text:\n got %q\nwant %q", got, words)
	}

	pool := l4proxy.New(nil, l4proxy.Options{})
	d := NewProxyDriver(pool, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Close(ctx)
	})
	ctx := context.Background()
	if err := d.Apply(ctx, node); err != nil {
		t.Fatal(err)
	}
	cs, _ := d.Plan(ctx, node)
	for _, c := range cs {
		if c.Action != plan.NoOp {
			t.Errorf("after Apply: %s %s is %s (%v)", c.Kind, c.ID, c.Action, c.Details)
		}
	}
	// Lift the allow list, rate and concurrency limits: the plan says so.
	web.Source = &spec.SourceRules{Deny: []string{"198.51.100.66/32"}}
	node.Services["web"] = web
	cs, _ = d.Plan(ctx, node)
	c := byID(cs)["proxy_service web"]
	wantDetail := "source " + words + " → deny 198.51.100.66/32; refused connections are reset"
	if c.Action != plan.Update || !slices.Contains(c.Details, wantDetail) {
		t.Errorf("plan after lifting the rules: %s %q, want %q", c.Action, c.Details, wantDetail)
	}

	// Long lists show their first prefixes and a count.
	var many []netip.Prefix
	for i := range 12 {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 32))
	}
	if got := l4proxy.DescribeSource(&l4proxy.SourceRules{Deny: many}); !strings.HasPrefix(got, "deny 203.0.113.0/32, 203.0.113.1/32, 203.0.113.2/32, 203.0.113.3/32, 203.0.113.4/32 and 7 more (12 CIDRs);") {
		t.Errorf("long list: %q", got)
	}

	// A hand-built spec with a bad CIDR or rate is an error naming the field.
	web.Source = &spec.SourceRules{Allow: []string{"198.51.100.0/24", "nope"}, MaxRatePerSource: "fast"}
	node.Services["web"] = web
	_, err = ProxyConfig(node)
	if err == nil || !strings.Contains(err.Error(), "service web: source: allow[1]") || !strings.Contains(err.Error(), "max_rate_per_source") {
		t.Errorf("bad source rules: %v", err)
	}
}
