package gitrepo

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long Watch waits for a burst of ref file events
// (lock file, rename, packed-refs) to settle before it signals.
const watchDebounce = 15 * time.Millisecond

// CanWatch reports whether Watch can see pushes to the Source's repository
// (it is on this machine).
func (s *Source) CanWatch() bool { return isLocal(s.opts.URL) }

// Watch signals on the returned channel soon after the tracked branch of a
// local repository (a path or file://) is updated: it watches the ref's
// directories and packed-refs with fsnotify and debounces bursts. A signal
// means "Sync now"; several updates may collapse into one. The channel is
// closed when ctx ends. For a remote that is not local, or if the watch
// cannot be set up, the channel never fires (poll instead); the error says
// why.
func (s *Source) Watch(ctx context.Context) (<-chan struct{}, error) {
	out := make(chan struct{}, 1)
	gitDir, err := localGitDir(s.opts.URL)
	if err != nil {
		go func() { <-ctx.Done(); close(out) }()
		return out, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		go func() { <-ctx.Done(); close(out) }()
		return out, err
	}
	// The directories that can hold the tracked ref, from the repository
	// down to refs/heads/a/b for a branch "a/b/c".
	refFile := filepath.Join(gitDir, "refs", "heads", filepath.FromSlash(s.opts.Ref))
	dirs := []string{gitDir}
	for d := filepath.Dir(refFile); d != gitDir && strings.HasPrefix(d, gitDir); d = filepath.Dir(d) {
		dirs = append(dirs, d)
	}
	watched := map[string]bool{}
	addAll := func() {
		for _, d := range dirs {
			if watched[d] {
				continue
			}
			if st, err := os.Stat(d); err == nil && st.IsDir() && w.Add(d) == nil {
				watched[d] = true
			}
		}
	}
	addAll()
	relevant := func(name string) bool {
		if name == refFile || name == filepath.Join(gitDir, "packed-refs") {
			return true
		}
		for _, d := range dirs {
			if name == d {
				return true // a directory on the path appeared
			}
		}
		return false
	}
	go func() {
		defer close(out)
		defer w.Close()
		var timer *time.Timer
		var fire <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if !relevant(ev.Name) {
					continue
				}
				if ev.Has(fsnotify.Create) {
					addAll()
				}
				if fire == nil {
					timer = time.NewTimer(watchDebounce)
					fire = timer.C
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				s.log.Warn("watch", "err", err)
			case <-fire:
				fire = nil
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, nil
}

// Jitter returns d moved by a random amount of at most ±frac·d, so that
// many agents polling one server spread out.
func Jitter(d time.Duration, frac float64) time.Duration {
	if d <= 0 || frac <= 0 {
		return d
	}
	span := float64(d) * frac
	return d + time.Duration((rand.Float64()*2-1)*span)
}
