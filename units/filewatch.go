package units

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// fileWatch sees the unit files of the last config edited, replaced or
// removed by hand as it happens, rather than at the next resync: systemd
// says nothing until a daemon-reload, and a file changed without one is a
// trap for the next restart. It watches the unit directory and the drop-in
// directories of the config; an event on one of the config's files is
// drift only when the file is now missing, not gitgw's, or no longer
// matches the hash gitgw recorded in it (so gitgw's own writes, which keep
// the hash, are never reported).
type fileWatch struct {
	w     *fsnotify.Watcher
	dir   string          // the unit directory watched; guarded by Manager.mu
	files map[string]bool // relative paths (NAME@.service, UNIT.d/NAME.conf)
	subs  map[string]bool // drop-in directories (UNIT.d) to watch
}

// filesOf lists the files a config writes and their drop-in directories.
func filesOf(cfg Config) (files, subs map[string]bool) {
	files, subs = map[string]bool{}, map[string]bool{}
	for _, t := range cfg.Templates {
		files[t.FileName()] = true
	}
	for _, d := range cfg.DropIns {
		files[d.FileName()] = true
		subs[filepath.Dir(d.FileName())] = true
	}
	return files, subs
}

// watchFilesOf points the file watcher at cfg's unit directory and files.
// Directories that do not exist yet are picked up when they appear (the
// unit directory on the next Plan or Set, a drop-in directory on its
// creation).
func (m *Manager) watchFilesOf(cfg Config) {
	if m.fw.w == nil {
		return
	}
	dir := filepath.Clean(cfg.unitDir())
	files, subs := filesOf(cfg)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fw.dir != "" && m.fw.dir != dir {
		for _, p := range m.fw.w.WatchList() {
			_ = m.fw.w.Remove(p)
		}
	}
	m.fw.dir, m.fw.files, m.fw.subs = dir, files, subs
	if err := m.fw.w.Add(dir); err != nil {
		m.log.Debug("unit directory not watched (yet)", "dir", dir, "err", err)
		return
	}
	for s := range subs {
		_ = m.fw.w.Add(filepath.Join(dir, s)) // missing: added on creation
	}
}

// watchFiles turns file events into drift Events until ctx ends.
func (m *Manager) watchFiles(ctx context.Context) {
	defer close(m.fileDone)
	if m.fw.w == nil {
		return
	}
	defer m.fw.w.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-m.fw.w.Errors:
			if !ok {
				return
			}
			m.log.Warn("unit directory watch", "err", err)
		case ev, ok := <-m.fw.w.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			m.mu.Lock()
			dir, files, subs := m.fw.dir, m.fw.files, m.fw.subs
			m.mu.Unlock()
			rel, err := filepath.Rel(dir, ev.Name)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			rel = filepath.ToSlash(rel)
			if subs[rel] && ev.Op&fsnotify.Create != 0 {
				_ = m.fw.w.Add(ev.Name)
				continue
			}
			if !files[rel] {
				continue
			}
			what := handChange(ev.Name)
			if what == "" {
				continue
			}
			e := Event{File: rel, Change: what}
			m.log.Warn("drift seen", "file", rel, "action", what)
			select {
			case m.events <- e:
			case <-ctx.Done():
				return
			default:
			}
		}
	}
}

// handChange says how the file at path differs from what gitgw wrote:
// "removed", "edited" (the body or the marker line changed: an editor
// truncating the file on save shows this way too), or "" when it is as
// gitgw wrote it.
func handChange(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "removed"
	}
	if o := ParseOwnership(b); !o.Owned || o.Edited {
		return "edited"
	}
	return ""
}
