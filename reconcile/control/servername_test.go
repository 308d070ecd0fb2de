package control

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gitgw/gitgw/dataplane/l4proxy"
)

// TestServerByNameShown: `gitgw status`, its JSON and the page show a
// server given by name with what it resolves to: resolved (and when),
// never resolved, or stale with its last address.
func TestServerByNameShown(t *testing.T) {
	at := time.Date(2026, 12, 6, 5, 4, 3, 0, time.UTC)
	svc := service(l4proxy.ServiceStats{Name: "db", Binds: []string{"203.0.113.100:5432"}, Status: "UP", Servers: []l4proxy.ServerStats{
		{Name: "ip", Addr: "198.51.100.11:5432", Status: "UP", Weight: 100},
		{Name: "named", Host: "db-1.example.com", Addr: "198.51.100.12:5432", Status: "UP", Weight: 100, ResolvedAt: at},
		{Name: "never", Host: "db-2.example.com", Status: "DOWN", Weight: 100, Resolve: "unresolved", ResolveError: "lookup db-2.example.com: no such host"},
		{Name: "gone", Host: "db-3.example.com", Addr: "198.51.100.13:5432", Status: "UP", Weight: 100, Resolve: "stale",
			ResolvedAt: at.Add(-time.Minute), StaleSince: at, ResolveError: "i/o timeout"},
	}})
	st := Status{Services: []Service{svc}}
	var text, page bytes.Buffer
	if err := RenderText(&text, st); err != nil {
		t.Fatal(err)
	}
	if err := RenderPage(&page, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"198.51.100.11:5432",
		"db-1.example.com → 198.51.100.12:5432 resolved at 05:04:03",
		"db-2.example.com unresolved",
		"db-3.example.com → 198.51.100.13:5432 stale since 05:04:03",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, text.String())
		}
		if !strings.Contains(page.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	js, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"host":"db-2.example.com"`, `"resolve":"unresolved"`, `"resolve_error":"lookup db-2.example.com: no such host"`,
		`"resolve":"stale"`, `"stale_since":"2026-12-06T05:04:03Z"`, `"resolved_at":"2026-12-06T05:04:03Z"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("status JSON lacks %s: %s", want, js)
		}
	}
}
