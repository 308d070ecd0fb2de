package control

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	st := fixture(t).Status()
	var page, text bytes.Buffer
	if err := RenderPage(&page, st); err != nil {
		t.Fatal(err)
	}
	golden(t, "page.html.golden", page.Bytes())
	if err := RenderText(&text, st); err != nil {
		t.Fatal(err)
	}
	golden(t, "status.txt.golden", text.Bytes())
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status.json.golden", append(js, '\n'))
	var back Status
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatalf("status JSON does not read back: %v", err)
	}
}

// TestRenderRealServer: a DR real server's setup gets its own rows in the
// text and on the page; a gateway (the fixture) shows no such section.
func TestRenderRealServer(t *testing.T) {
	st := fixture(t).Status()
	st.RealServer = []Resource{
		{Driver: "realserver", Kind: "real_server_vip", ID: "203.0.113.100/32 on lo", Action: "no-op",
			Details: []string{"dr service web: server r1 is this node's 203.0.113.21 on eth0"}},
		{Driver: "realserver", Kind: "real_server_sysctl", ID: "net.ipv4.conf.all.arp_ignore", Action: "update"},
	}
	var page, text bytes.Buffer
	if err := RenderPage(&page, st); err != nil {
		t.Fatal(err)
	}
	if err := RenderText(&text, st); err != nil {
		t.Fatal(err)
	}
	for what, out := range map[string]string{"page": page.String(), "text": text.String()} {
		for _, want := range []string{"203.0.113.100/32 on lo", "dr service web: server r1 is this node", "net.ipv4.conf.all.arp_ignore"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: no %q in\n%s", what, want, out)
			}
		}
	}
	var gw bytes.Buffer
	if err := RenderText(&gw, fixture(t).Status()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(gw.String(), "REAL SERVER") {
		t.Errorf("a gateway shows a real server section:\n%s", gw.String())
	}
}
