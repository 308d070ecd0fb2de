package control

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

//go:embed page.html
var pageHTML string

// PageRefresh is how often the status page reloads itself, in seconds.
const PageRefresh = 5

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"short": func(c string) string {
		if c == "" {
			return "none"
		}
		if len(c) > 12 {
			return c[:12]
		}
		return c
	},
	"lower": strings.ToLower,
	"join":  func(s []string) string { return strings.Join(s, " ") },
	"ms":    func(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) },
	// ago says how long before now t was, in whole seconds ("" when unset).
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return now.Sub(t).Truncate(time.Second).String() + " ago"
	},
	"dur":           func(d time.Duration) string { return d.Truncate(time.Second).String() },
	"uncheckedRisk": func() string { return UncheckedRisk },
	"outcomeClass": func(o string) string {
		switch o {
		case "applied", "unchanged", "converged":
			return "up"
		case "suspended", "held", "pending":
			return "drain"
		}
		return "down"
	},
	"outcomeLine": outcomeLine,
	"unitClass": func(s string) string {
		switch {
		case strings.HasPrefix(s, "active"):
			return "up"
		case strings.HasPrefix(s, "activating"), strings.HasPrefix(s, "reloading"):
			return "drain"
		}
		return "down"
	},
}).Parse(pageHTML))

// RenderPage writes the status page: one HTML page, readable at a glance
// like HAProxy's stats page, that reloads itself every PageRefresh seconds.
func RenderPage(w io.Writer, st Status) error {
	return pageTmpl.Execute(w, struct {
		S       Status
		Refresh int
	}{st, PageRefresh})
}
