package nic

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultSpan and DefaultEvery are the window the agent reports (the last
// minute) and how often it reads the counters for it: a window is then
// between 60 and 65 seconds long.
const (
	DefaultSpan  = time.Minute
	DefaultEvery = 5 * time.Second
)

// Sampler reads /proc/softirqs and /proc/interrupts every few seconds and
// keeps a Window of the readings, so that plan, status and metrics show
// the spread of receive work over the last minute, not since boot. Its
// loop (Run) belongs to whoever starts it; the other methods may be called
// from any goroutine.
type Sampler struct {
	// ProcRoot is where procfs is mounted; "" means /proc.
	ProcRoot string
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu  sync.Mutex
	win Window
}

// NewSampler returns a sampler over procRoot ("" for /proc) with a window
// of span (0 for DefaultSpan).
func NewSampler(procRoot string, span time.Duration) *Sampler {
	if span <= 0 {
		span = DefaultSpan
	}
	return &Sampler{ProcRoot: procRoot, win: Window{Span: span}}
}

// Sample reads the counters once and adds them to the window. A file that
// cannot be read leaves its part empty and is returned; the other part is
// still recorded.
func (s *Sampler) Sample() error {
	root := s.ProcRoot
	if root == "" {
		root = "/proc"
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	c := Counters{At: now()}
	var errs []error
	if f, err := os.Open(filepath.Join(root, "softirqs")); err != nil {
		errs = append(errs, fmt.Errorf("nic: read softirqs: %w", err))
	} else {
		c.NetRX, err = parseSoftirqs(f, "NET_RX")
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("nic: %w", err))
		}
	}
	if f, err := os.Open(filepath.Join(root, "interrupts")); err != nil {
		errs = append(errs, fmt.Errorf("nic: read interrupts: %w", err))
	} else {
		lines, err := parseInterrupts(f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("nic: %w", err))
		}
		c.IRQs = make(map[int][]CPUCount, len(lines))
		for n, l := range lines {
			c.IRQs[n] = l.Counts
		}
	}
	s.mu.Lock()
	s.win.Add(c)
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Run samples now and then every every (0 for DefaultEvery) until ctx is
// done. Read errors are not fatal: the next reading may work, and a window
// without figures says so where it is shown.
func (s *Sampler) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultEvery
	}
	_ = s.Sample()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.Sample()
		}
	}
}

// Recent returns the counts over the window; ok is false until two
// readings were taken.
func (s *Sampler) Recent() (Recent, bool) {
	if s == nil {
		return Recent{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.win.Recent()
}
