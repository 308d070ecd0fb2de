// Package logs builds the agent's slog logger: text for a person at a
// terminal, JSON for journald and log shippers, and in both the same
// promises, because an operator greps and alerts on these lines at 3 a.m.:
//
//   - one value per key in a line: a logger that was given a component (or
//     any key) twice keeps the innermost one, instead of printing both
//     ("component" twice in one JSON object breaks most parsers);
//   - durations as Go duration strings ("1.5s"), not nanoseconds;
//   - no "err":null: an attribute whose value is a nil error or nil
//     pointer is left out.
//
// # Levels
//
// A level says what the reader must do, so that WARN and ERROR lines are
// worth an alert:
//
//   - ERROR: gitgw tried something it owes the node and it failed, and
//     waiting will not fix it: an apply failed, a revision was rejected, the
//     health gate failed and rolled back, VIPs not installed or not removed,
//     a state file corrupt or not written, a push the server refuses for
//     good (a diverged status branch).
//   - WARN: gitgw carries on, but an operator should look: drift (corrected
//     or left in place), a server DOWN, a peer that misbehaves or does not
//     report, the node held away from the site on purpose (an override, a
//     suspend, a pinned or held commit), a feature off or a check skipped,
//     and a failure that gitgw retries by itself (a fetch, a status push, an
//     advert not sent). A failure that lasts is seen in the metrics (the
//     time of the last successful sync or push), not by counting WARN lines.
//   - INFO: normal progress: a pass applied, a VRRP transition, a server
//     UP, a commit synced, a unit started, an override cleared.
//   - DEBUG: detail: each fetch, each status commit, a step's decision.
//
// # Keys
//
// One key per concept everywhere: node, commit (the commit the line is
// about; others by their role: head, pinned, last_good…), instance (a VRRP
// instance), service, server, unit, interface, vip, driver, peer, file,
// err (an error, never "error"), reason (why, in words), detail (free text
// from elsewhere), duration (how long it took). The full list, with what
// each key holds, is vocabulary in keys.go; a test fails on a key not in
// it, or on a known synonym ("svc", "why", "took", "error"…).
package logs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"slices"
)

// Format is how lines are written.
type Format string

const (
	// Auto is Text on a terminal and JSON everywhere else (systemd's
	// journal, a pipe, a file).
	Auto Format = "auto"
	Text Format = "text"
	JSON Format = "json"
)

// ParseFormat reads the --log-format flag.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Auto, Text, JSON:
		return f, nil
	case "":
		return Auto, nil
	}
	return "", fmt.Errorf("--log-format %q: want text, json or auto", s)
}

// New returns a logger writing to w in format f at level (and above).
func New(w io.Writer, f Format, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: replace}
	if f == Auto {
		f = JSON
		if IsTerminal(w) {
			f = Text
		}
	}
	var h slog.Handler
	if f == Text {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(&dedup{inner: h})
}

// ForCommand is New for a command's --log-format and --debug: Info and
// above, Debug too with debug. A format ParseFormat refuses (the command
// refused it before any work) is Auto.
func ForCommand(w io.Writer, format string, debug bool) *slog.Logger {
	lvl := slog.LevelInfo
	if debug {
		lvl = slog.LevelDebug
	}
	f, err := ParseFormat(format)
	if err != nil {
		f = Auto
	}
	return New(w, f, lvl)
}

// IsTerminal says whether w is a character device (a person is reading).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// replace writes durations as strings. Nil values are dropped in dedup,
// because ReplaceAttr cannot remove an attribute.
func replace(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// dedup keeps the attributes given by With itself, so that a key given
// again (a component set by the caller and again by a subsystem) replaces
// the earlier value instead of being written twice. The inner handler sees
// every line's attributes once, in order of first appearance. Groups are
// passed through (gitgw does not use them).
type dedup struct {
	inner slog.Handler
	attrs []slog.Attr
}

func (d *dedup) Enabled(ctx context.Context, l slog.Level) bool { return d.inner.Enabled(ctx, l) }

func (d *dedup) WithAttrs(as []slog.Attr) slog.Handler {
	return &dedup{inner: d.inner, attrs: merge(slices.Clone(d.attrs), as)}
}

func (d *dedup) WithGroup(name string) slog.Handler {
	// Attributes given so far belong outside the group: hand them down.
	return &dedup{inner: d.inner.WithAttrs(d.attrs).WithGroup(name)}
}

func (d *dedup) Handle(ctx context.Context, r slog.Record) error {
	as := slices.Clone(d.attrs)
	var own []slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		own = append(own, a)
		return true
	})
	as = merge(as, own)
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(as...)
	return d.inner.Handle(ctx, out)
}

// merge adds as to base: a key already there takes the new value in its
// old place; a nil value removes the key; the message's own key is
// renamed, since "msg" is the line's message.
func merge(base, as []slog.Attr) []slog.Attr {
	for _, a := range as {
		if a.Key == slog.MessageKey {
			a.Key = "detail"
		}
		i := slices.IndexFunc(base, func(b slog.Attr) bool { return b.Key == a.Key })
		if isNil(a.Value) {
			if i >= 0 {
				base = slices.Delete(base, i, i+1)
			}
			continue
		}
		if i >= 0 {
			base[i] = a
		} else {
			base = append(base, a)
		}
	}
	return base
}

func isNil(v slog.Value) bool {
	if v.Kind() != slog.KindAny {
		return false
	}
	x := v.Any()
	if x == nil {
		return true
	}
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		return rv.IsNil()
	}
	return false
}
