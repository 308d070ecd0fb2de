package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/gitgw/gitgw/internal/words"
)

// TextOptions tune the human rendering.
type TextOptions struct {
	// Color adds ANSI colours (on a TTY only; the caller decides).
	Color bool
	// Verbose also lists resources that are already as desired.
	Verbose bool
}

const (
	ansiReset  = "\x1b[0m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
	ansiDim    = "\x1b[2m"
	ansiBold   = "\x1b[1m"
)

var symbols = map[Action]struct{ sym, color string }{
	Create:  {"+", ansiGreen},
	Update:  {"~", ansiYellow},
	Delete:  {"-", ansiRed},
	NoOp:    {"=", ansiDim},
	Pending: {"?", ansiDim},
}

// WriteText renders the plan for people: a header per driver, one line per
// change (`+` create, `~` update, `-` delete, `?` pending), details indented
// below, and a summary line.
func WriteText(w io.Writer, p *Plan, o TextOptions) error {
	bw := &errWriter{w: w}
	paint := func(color, s string) string {
		if !o.Color || color == "" {
			return s
		}
		return color + s + ansiReset
	}
	bw.printf("gitgw plan for node %s", p.Node)
	if p.Commit != "" {
		bw.printf(" at %s", shortCommit(p.Commit))
	}
	bw.printf("\n")
	lastDriver := ""
	for _, ch := range p.Changes {
		if ch.Action == NoOp && !o.Verbose {
			continue
		}
		if ch.Driver != lastDriver {
			bw.printf("\n%s\n", paint(ansiBold, "# "+ch.Driver))
			lastDriver = ch.Driver
		}
		s := symbols[ch.Action]
		line := fmt.Sprintf("  %s %s %s", s.sym, ch.Kind, ch.ID)
		switch ch.Action {
		case Create:
			line += ": " + Value(ch.After)
		case Update:
			line += ": " + Value(ch.Before) + " → " + Value(ch.After)
		case Delete:
			if ch.Before != nil {
				line += " (was " + Value(ch.Before) + ")"
			}
		case NoOp, Pending:
			if ch.After != nil {
				line += ": " + Value(ch.After)
			}
		}
		if ch.Reason != "" {
			line += "  (" + ch.Reason + ")"
		}
		if ch.Drift {
			line += " [drift]"
		}
		bw.printf("%s\n", paint(s.color, line))
		for _, d := range ch.Details {
			bw.printf("      %s\n", d)
		}
	}
	if len(p.Notes) > 0 {
		bw.printf("\n")
		for _, n := range p.Notes {
			bw.printf("note: %s\n", n)
		}
	}
	c := p.Count()
	bw.printf("\n")
	switch {
	case !p.HasChanges() && c.Pending > 0:
		bw.printf("No changes in what the available drivers manage (%s).\n", words.Plural(c.NoOp, "resource"))
	case !p.HasChanges():
		bw.printf("No changes. The node matches the site (%s).\n", words.Plural(c.NoOp, "resource"))
	default:
		bw.printf("Plan: %d to create, %d to update, %d to delete, %d unchanged.\n", c.Create, c.Update, c.Delete, c.NoOp)
	}
	if c.Pending > 0 {
		bw.printf("%s pending: their driver is not available on this node.\n", words.Plural(c.Pending, "resource"))
	}
	return bw.err
}

// Document is the versioned JSON form of a plan.
type Document struct {
	FormatVersion int      `json:"format_version"`
	Node          string   `json:"node"`
	Commit        string   `json:"commit,omitempty"`
	Summary       Summary  `json:"summary"`
	Changes       []Change `json:"changes"`
	Notes         []string `json:"notes,omitempty"`
}

// Summary counts the changes by action in the JSON document.
type Summary struct {
	Create  int  `json:"create"`
	Update  int  `json:"update"`
	Delete  int  `json:"delete"`
	NoOp    int  `json:"no_op"`
	Pending int  `json:"pending"`
	Changes bool `json:"changes"`
}

// WriteJSON renders the plan as an indented, versioned JSON document.
func WriteJSON(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(document(p)); err != nil {
		return fmt.Errorf("plan: encode json: %w", err)
	}
	return nil
}

// document is the plan's JSON document.
func document(p *Plan) Document {
	c := p.Count()
	doc := Document{
		FormatVersion: SchemaVersion,
		Node:          p.Node,
		Commit:        p.Commit,
		Summary:       Summary{c.Create, c.Update, c.Delete, c.NoOp, c.Pending, p.HasChanges()},
		Changes:       p.Changes,
		Notes:         p.Notes,
	}
	if doc.Changes == nil {
		doc.Changes = []Change{}
	}
	return doc
}

// Value renders a before/after value on one line: strings as they are,
// anything else as compact JSON.
func Value(v any) string {
	switch x := v.(type) {
	case nil:
		return "(none)"
	case string:
		if x == "" {
			return `""`
		}
		return x
	case fmt.Stringer:
		return x.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

func shortCommit(c string) string {
	if len(c) > 12 && !strings.ContainsAny(c, " /") {
		return c[:12]
	}
	return c
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	_, e.err = fmt.Fprintf(e.w, format, args...)
}
