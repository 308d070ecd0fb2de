package gitrepo

// Refs in the state dir. The agent keeps three repositories there (the
// site's local copy with its synced ref, the status writer's branch, the
// cache of the peers' status branches), and go-git rewrites a loose ref in
// place: a crash or a power loss can leave one empty or truncated. go-git
// then reads an empty ref as missing but fails every listing of refs ("ref
// file is empty", so every fetch), and reads a truncated hash padded with
// zeros, an unknown commit. Either way the agent would be wedged on its own
// state; RepairRefs moves such refs aside first.

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// corruptRefsDir, inside a repository's git directory, keeps the refs moved
// aside, out of refs/ (where go-git would list them again).
const corruptRefsDir = "gitgw-corrupt"

// RepairRefs moves aside every loose ref under gitDir/refs that is not a
// full hash or a symbolic ref, logging each at ERROR level with where it
// went, and returns the names of the refs moved. A missing repository is
// not an error (it is created later).
func RepairRefs(gitDir string, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root := filepath.Join(gitDir, "refs")
	var moved []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == root {
			return fs.SkipDir
		}
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".lock") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if validRef(b) {
			return nil
		}
		rel, _ := filepath.Rel(gitDir, path)
		name := filepath.ToSlash(rel)
		aside, err := moveRefAside(gitDir, name)
		if err != nil {
			return err
		}
		why := "empty"
		if len(b) > 0 {
			why = fmt.Sprintf("not a hash: %q", truncate(string(b), 80))
		}
		log.Error("state file corrupt; moved aside", "file", filepath.Join(gitDir, rel), "reason", why, "moved_to", aside)
		moved = append(moved, name)
		return nil
	})
	if err != nil {
		return moved, fmt.Errorf("gitrepo: check refs of %s: %w", gitDir, err)
	}
	return moved, nil
}

// moveRefAside renames the loose ref name (refs/…) of gitDir into
// gitDir/gitgw-corrupt, as NAME.corrupt-TIMESTAMP with its slashes turned
// into '%', and returns the new path.
func moveRefAside(gitDir, name string) (string, error) {
	dir := filepath.Join(gitDir, corruptRefsDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	aside := filepath.Join(dir, fmt.Sprintf("%s.corrupt-%s", strings.ReplaceAll(name, "/", "%"),
		time.Now().UTC().Format("20060102T150405.000000000Z")))
	if err := os.Rename(filepath.Join(gitDir, filepath.FromSlash(name)), aside); err != nil {
		return "", err
	}
	return aside, nil
}

// validRef says whether a loose ref file holds a full hash (SHA-1 or
// SHA-256) or a symbolic ref, and nothing else but the final newline.
func validRef(b []byte) bool {
	s := strings.TrimSuffix(string(b), "\n")
	if strings.HasPrefix(s, "ref: refs/") {
		return !strings.ContainsAny(s, "\n\x00")
	}
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
