package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// narrator prints the demo's story: numbered steps with the time elapsed
// since the start, indented details, and waits with their measured length.
// On a terminal a wait shows a spinner and its running time on one line
// that the result overwrites; elsewhere (a log, CI) only the result is
// printed, one plain line each.
type narrator struct {
	out   io.Writer
	tty   bool
	start time.Time
	total int

	mu    sync.Mutex
	step  int
	title string
	// waits are the measured waits, in order, for the closing summary.
	waits []measure
}

// measure is one wait the demo timed.
type measure struct {
	Step int
	What string
	Took time.Duration
}

// pollEvery is how often a wait checks its condition: fine enough to time
// a failover to within a few tens of milliseconds.
const pollEvery = 20 * time.Millisecond

func newNarrator(out io.Writer, tty bool, total int) *narrator {
	return &narrator{out: out, tty: tty, start: time.Now(), total: total}
}

func (n *narrator) bold(s string) string {
	if !n.tty {
		return s
	}
	return "\033[1m" + s + "\033[0m"
}

// Step starts the next numbered step.
func (n *narrator) Step(title string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.step++
	n.title = title
	fmt.Fprintf(n.out, "\n%s\n", n.bold(fmt.Sprintf("[%d/%d] %5.1fs  %s", n.step, n.total, time.Since(n.start).Seconds(), title)))
}

// Say prints detail lines under the current step.
func (n *narrator) Say(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for line := range strings.SplitSeq(strings.TrimRight(fmt.Sprintf(format, args...), "\n"), "\n") {
		fmt.Fprintln(n.out, strings.TrimRight("        "+line, " "))
	}
}

// Show prints a command's output under the current step, headed by the
// command line as an operator would type it.
func (n *narrator) Show(where, cmdline, output string) {
	n.Say("%s# %s", where, cmdline)
	out := strings.TrimRight(output, "\n")
	if out == "" {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for line := range strings.SplitSeq(out, "\n") {
		fmt.Fprintln(n.out, strings.TrimRight("          "+line, " "))
	}
}

// Wait polls cond until it holds, the timeout passes or ctx ends, and
// prints how long it took, measured from since (the moment the awaited
// thing was set off; zero: now). cond returns whether it holds and, when
// not, what it saw, for the error on a timeout.
func (n *narrator) Wait(ctx context.Context, what string, since time.Time, timeout time.Duration, cond func(context.Context) (bool, string)) (time.Duration, error) {
	if since.IsZero() {
		since = time.Now()
	}
	deadline := time.Now().Add(timeout)
	spin := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
	var last string
	var drawn time.Time
	for i := 0; ; i++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, seen := cond(cctx)
		cancel()
		took := time.Since(since)
		if ok {
			n.mu.Lock()
			n.waits = append(n.waits, measure{Step: n.step, What: what, Took: took})
			if n.tty {
				fmt.Fprint(n.out, "\r\033[K")
			}
			fmt.Fprintf(n.out, "        ✓ %s after %s\n", what, seconds(took))
			n.mu.Unlock()
			return took, nil
		}
		last = seen
		if n.tty && time.Since(drawn) >= 100*time.Millisecond {
			drawn = time.Now()
			n.mu.Lock()
			fmt.Fprintf(n.out, "\r\033[K        %s %s … %.1f s", spin[i%len(spin)], what, took.Seconds())
			n.mu.Unlock()
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			if n.tty {
				fmt.Fprint(n.out, "\r\033[K")
			}
			fmt.Fprintf(n.out, "        ✗ %s: not after %s\n", what, seconds(took))
			if ctx.Err() != nil {
				return took, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
			}
			return took, fmt.Errorf("%s: not after %s (last seen: %s)", what, seconds(took), strings.TrimSpace(last))
		}
		select {
		case <-ctx.Done():
		case <-time.After(pollEvery):
		}
	}
}

// Waits returns the measured waits so far.
func (n *narrator) Waits() []measure {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]measure(nil), n.waits...)
}

// Elapsed is the time since the demo started.
func (n *narrator) Elapsed() time.Duration { return time.Since(n.start) }

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
