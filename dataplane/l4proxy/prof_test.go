package l4proxy

import (
	"net/netip"
	"os"
	"testing"
	"time"
)

func TestProfShort(t *testing.T) {
	if os.Getenv("L4PROF") == "" {
		t.Skip()
	}
	b := &testing.B{}
	_ = b
	rr := rrBackendT(t)
	bind := freePort(t)
	newTestPool(t, Options{Shards: 1}, Config{Services: []Service{{Name: "p", Binds: []netip.AddrPort{bind}, Servers: []Server{{Name: "s", Addr: rr, Weight: 1}}}}})
	st := requests(bind.String(), 50, 5*time.Second, false)
	t.Logf("%.0f conn/s fails %d", st.rate(), st.fails)
}
