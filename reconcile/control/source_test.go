package control

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestFetches: a failing source shows in status, the text status, the
// page and the metrics, and a success clears the error but not the count.
func TestFetches(t *testing.T) {
	c := fixture(t)
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	c.ObserveSync(t0, nil)
	c.ObserveSync(t0.Add(time.Minute), errors.New("gitrepo: fetch ssh://git.example.net/site.git: connection refused"))
	c.ObserveSync(t0.Add(2*time.Minute), errors.New("gitrepo: fetch ssh://git.example.net/site.git: connection refused"))
	st := c.Status()
	if st.Fetches.Failures != 2 || !st.Fetches.LastSuccess.Equal(t0) || !strings.Contains(st.Fetches.LastError, "connection refused") {
		t.Fatalf("fetches = %+v", st.Fetches)
	}
	var text bytes.Buffer
	if err := RenderText(&text, st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "FAILING (2 failures; last at 2026-12-06 03:00:00Z): gitrepo: fetch") {
		t.Errorf("text status:\n%s", text.String())
	}
	srv := httptest.NewServer(c.WebHandler(DefaultListen))
	defer srv.Close()
	if page := get(t, srv.URL+"/"); !strings.Contains(page, `id="fetch-error">failing (2 failures): gitrepo: fetch`) {
		t.Errorf("the page does not show the failing fetch")
	}
	metrics := get(t, srv.URL+"/metrics")
	for _, want := range []string{"gitgw_source_fetch_failures_total 2", "gitgw_source_last_success_timestamp_seconds 1.796526e+09"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	c.ObserveSync(t0.Add(3*time.Minute), nil)
	if st := c.Status(); st.Fetches.LastError != "" || st.Fetches.Failures != 2 {
		t.Errorf("after a success: %+v", st.Fetches)
	}
}
