package fleet

// The fleet page: `gitgw fleet --serve ADDR`. One goroutine re-reads the
// status branches on a fixed period and keeps the last snapshot; requests
// only render it. A page that triggered reads would let any number of
// open browser tabs (or a scraper) multiply the load on the Git server,
// and two reads at once would race for the cache directory.

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gitgw/gitgw/internal/hostguard"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gitgw/gitgw/reconcile/drift"
)

// DefaultRefresh is how often the page re-reads the fleet by default.
const DefaultRefresh = 15 * time.Second

// PageOptions configure the fleet page.
type PageOptions struct {
	// Read says where the fleet is read from. Its Warn is set by the page
	// (warnings are shown with the snapshot).
	Read Options
	// Listen is the address the page is served on: the Host header of a
	// request must name it or a loopback name (see allowedHost).
	Listen string
	// Refresh is the period of the re-reads (default DefaultRefresh).
	Refresh time.Duration
	// Logger receives failed reads (default: discarded).
	Logger *slog.Logger
}

// Page serves the fleet view over HTTP from a snapshot that Run refreshes.
type Page struct {
	o     PageOptions
	tmpl  *template.Template
	ready chan struct{} // closed when the first read ended

	reading sync.Mutex // held for a read: one at a time
	mu      sync.Mutex // guards snap
	snap    snapshot
}

// snapshot is what the last reads gave.
type snapshot struct {
	// Fleet and Reports are from the last successful read, at ReadAt
	// (zero: none yet).
	Fleet   drift.Fleet
	Reports map[string]drift.NodeReport
	ReadAt  time.Time
	// Warnings of that read (the tracked head unknown).
	Warnings []string
	// Err is the last read's error when it failed (after ReadAt), at
	// ErrAt; cleared by a successful read.
	Err   error
	ErrAt time.Time
	// Reads counts the reads started, Failures those that failed;
	// Took is how long the last read took.
	Reads, Failures int
	Took            time.Duration
}

//go:embed page.html
var pageHTML string

// NewPage makes the page; Run fills it.
func NewPage(o PageOptions) *Page {
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Read.Now == nil {
		o.Read.Now = time.Now
	}
	t := template.Must(template.New("page").Funcs(template.FuncMap{
		"short": drift.Short,
		"ago":   func(t time.Time) string { return ago(o.Read.Now(), t) },
		"utc":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	}).Parse(pageHTML))
	return &Page{o: o, tmpl: t, ready: make(chan struct{})}
}

// Ready is closed once the first read has ended, with or without a
// snapshot.
func (p *Page) Ready() <-chan struct{} { return p.ready }

// Reads is how many reads the page has started.
func (p *Page) Reads() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap.Reads
}

// Refresh reads the fleet once and keeps it as the snapshot; a failed
// read keeps the previous snapshot and records the error beside it. A
// second call waits for the first: reads never overlap.
func (p *Page) Refresh(ctx context.Context) error {
	p.reading.Lock()
	defer p.reading.Unlock()
	p.mu.Lock()
	p.snap.Reads++
	p.mu.Unlock()
	var warnings []string
	o := p.o.Read
	o.Warn = func(err error) { warnings = append(warnings, err.Error()) }
	start := time.Now()
	head, reports, err := readReports(ctx, o)
	took := time.Since(start)
	now := o.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.snap.Took = took
	if err != nil {
		p.snap.Err, p.snap.ErrAt = err, now
		p.snap.Failures++
		return err
	}
	byNode := make(map[string]drift.NodeReport, len(reports))
	for _, r := range reports {
		byNode[r.Node] = r
	}
	p.snap = snapshot{Fleet: drift.BuildFleet(head, reports), Reports: byNode, ReadAt: now, Warnings: warnings,
		Reads: p.snap.Reads, Failures: p.snap.Failures, Took: took}
	return nil
}

// Run refreshes the snapshot every Refresh until ctx ends: one read at a
// time, the next period counted from the end of the last read, so that a
// slow server is never asked twice at once.
// Call it once.
func (p *Page) Run(ctx context.Context) {
	if p.o.Read.CacheDir == "" && !isLocalPath(p.o.Read.URL) {
		// A remote repository is fetched into a cache, so that a re-read
		// fetches what changed, not every branch again.
		if dir, err := os.MkdirTemp("", "gitgw-fleet-cache-"); err == nil {
			defer os.RemoveAll(dir)
			p.reading.Lock() // Refresh reads the options under it
			p.o.Read.CacheDir = dir + "/status.git"
			p.reading.Unlock()
		}
	}
	first := true
	var failing string
	for {
		// A failing read is logged when it starts failing (or fails
		// differently) and when it recovers, not on every period.
		err := p.Refresh(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && err.Error() != failing:
			failing = err.Error()
			p.o.Logger.Warn("fleet read failed; the page shows the last snapshot", "err", err)
		case err == nil && failing != "":
			failing = ""
			p.o.Logger.Info("fleet read works again")
		}
		if first {
			close(p.ready)
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.o.Refresh):
		}
	}
}

// redacted is url without its password, if it has one: the page must not
// show a token given in the URL.
func redacted(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}

// isLocalPath says whether url is a path on this machine (read in place).
func isLocalPath(url string) bool {
	return !strings.Contains(url, "://") && !strings.Contains(url, "@")
}

// Serve runs the re-reads and serves the page on ln until ctx ends.
func (p *Page) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = srv.Shutdown(shut)
	}()
	err := srv.Serve(ln)
	cancel()
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("fleet page: %w", err)
}

// Handler serves / (the page), /fleet.json (what `gitgw fleet --json`
// prints) and /metrics to requests whose Host header names the listener.
func (p *Page) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.servePage)
	mux.HandleFunc("GET /fleet.json", p.serveJSON)
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.Registry(), promhttp.HandlerOpts{}))
	listen := p.o.Listen
	return hostguard.Guard(listen, "the fleet page answers only to localhost, loopback addresses and "+listen, mux)
}

func (p *Page) serveJSON(w http.ResponseWriter, _ *http.Request) {
	s := p.snapshot()
	if s.ReadAt.IsZero() {
		msg := "no fleet read yet"
		if s.Err != nil {
			msg += ": " + s.Err.Error()
		}
		http.Error(w, msg, http.StatusServiceUnavailable)
		return
	}
	var b bytes.Buffer
	if err := drift.WriteFleetJSON(&b, s.Fleet); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Last-Modified", s.ReadAt.UTC().Format(http.TimeFormat))
	_, _ = w.Write(b.Bytes())
}

func (p *Page) servePage(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	if err := p.tmpl.Execute(&b, p.view(p.snapshot())); err != nil {
		http.Error(w, "fleet page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

func (p *Page) snapshot() snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap
}

// pageView is what page.html renders.
type pageView struct {
	URL, Ref string
	Refresh  int    // seconds between the browser's reloads
	Period   string // between the page's re-reads
	Now      time.Time
	S        snapshot
	Counts   []count
	Critical []drift.FleetAlert // split brains and routers without a master
	Alerts   []drift.FleetAlert // the rest
	Nodes    []nodeRow
	Routers  []routerRow
}

type count struct {
	Label, Class string
	N            int
}

type nodeRow struct {
	drift.FleetNode
	Class, OutcomeClass, SyncClass string
	Reported                       time.Time
	Roles                          []role
	Proxy                          string
}

type role struct{ Name, State, Class string }

type routerRow struct {
	drift.FleetVRRP
	Roles []role
}

func (p *Page) view(s snapshot) pageView {
	v := pageView{URL: redacted(p.o.Read.URL), Ref: p.o.Read.Ref, Refresh: max(5, int(p.o.Refresh/time.Second)), Period: p.o.Refresh.String(), Now: p.o.Read.Now(), S: s}
	if s.ReadAt.IsZero() {
		return v
	}
	f := s.Fleet
	byOutcome := map[string]int{}
	behind, stale, unreadable := 0, 0, 0
	for _, n := range f.Nodes {
		row := nodeRow{FleetNode: n, OutcomeClass: outcomeClass(n.Outcome), SyncClass: syncClass(n.Sync), Reported: s.Reports[n.Node].Time}
		byOutcome[n.Outcome]++
		if n.Sync == "behind" {
			behind++
		}
		if n.Stale {
			stale++
			row.Class = "stale"
		}
		if n.Outcome == "" {
			unreadable++
		}
		for _, name := range slices.Sorted(maps.Keys(n.Roles)) {
			row.Roles = append(row.Roles, role{name, n.Roles[name], strings.ToLower(n.Roles[name])})
		}
		var proxy []string
		for _, h := range slices.Sorted(maps.Keys(n.Proxy)) {
			proxy = append(proxy, fmt.Sprintf("%d %s", n.Proxy[h], h))
		}
		row.Proxy = strings.Join(proxy, ", ")
		v.Nodes = append(v.Nodes, row)
	}
	v.Counts = []count{{"nodes", "", len(f.Nodes)}}
	for _, o := range drift.Outcomes {
		// The five an operator always looks for; the rarer ones only
		// when they occur.
		if n := byOutcome[o]; n > 0 || slices.Contains([]string{drift.Converged, drift.Incomplete, drift.Held, drift.Suspended, drift.Failed}, o) {
			v.Counts = append(v.Counts, count{o, outcomeClass(o), n})
		}
	}
	v.Counts = append(v.Counts, count{"behind head", "", behind}, count{"stale", "bad", stale})
	if unreadable > 0 {
		v.Counts = append(v.Counts, count{"unreadable", "bad", unreadable})
	}
	for i := range v.Counts {
		if v.Counts[i].N == 0 || v.Counts[i].Label == "nodes" {
			v.Counts[i].Class = ""
		}
	}
	for _, a := range f.Alerts {
		if a.Kind == "split-brain" || a.Kind == "no-master" {
			v.Critical = append(v.Critical, a)
		} else {
			v.Alerts = append(v.Alerts, a)
		}
	}
	for _, rt := range f.Routers {
		row := routerRow{FleetVRRP: rt}
		for _, node := range slices.Sorted(maps.Keys(rt.Roles)) {
			row.Roles = append(row.Roles, role{node, rt.Roles[node], strings.ToLower(rt.Roles[node])})
		}
		v.Routers = append(v.Routers, row)
	}
	return v
}

func outcomeClass(o string) string {
	switch o {
	case drift.Converged:
		return "ok"
	case drift.Incomplete, drift.Held, drift.Suspended:
		return "warn"
	case "":
		return "unknown"
	}
	return "bad"
}

func syncClass(s string) string {
	switch s {
	case "current":
		return "ok"
	case "unknown":
		return "unknown"
	case "behind", "held", "suspended":
		return "warn"
	}
	return "bad"
}

// ago is t's age at now, as a person reads it ("3m12s ago").
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		return "in the future (clock skew)"
	}
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
	return cmp.Or(d.String(), "0s") + " ago"
}

// allowedHost is hostguard.Allowed (the page's tests name it so).
var allowedHost = hostguard.Allowed
