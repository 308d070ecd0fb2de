package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
)

// MaxCachePacks bounds a fleet read's cache (ReadOptions.CacheDir): each
// read that finds heads moved adds one pack of their objects, and nothing
// in a pack is ever removed. Past this many packs the cache starts over (a
// read then costs what a first read does), so that it holds at most this
// many reads' worth of objects, and a read does not open ever more pack
// indexes.
const MaxCachePacks = 32

// fetchHeads fetches, at depth 1, the heads of the refs under prefixes that
// objects lacks, and returns every such ref the remote advertises. It is
// go-git's fetch without what costs at 10,000 refs: go-git merges each
// shallow commit the server reports into its shallow list by a linear
// search (quadratic: half of a first read of 10,000 nodes' branches and
// alive refs), and stores every ref. A reader keeps neither: it reads the
// heads, never their parents, and takes the refs from the advertisement
// each time. A ref that moved between the advertisement and the request
// makes the server refuse the want ("not our ref", see fetchMoving): the
// fetch then asks again.
func fetchHeads(ctx context.Context, url string, ra remoteAccess, objects storer.EncodedObjectStorer, prefixes []string) ([]*plumbing.Reference, error) {
	var err error
	for range fetchAttempts {
		var refs []*plumbing.Reference
		refs, err = fetchHeadsOnce(ctx, url, ra, objects, prefixes)
		if err == nil || !strings.Contains(err.Error(), "not our ref") || ctx.Err() != nil {
			return refs, err
		}
	}
	return nil, err
}

func fetchHeadsOnce(ctx context.Context, url string, ra remoteAccess, objects storer.EncodedObjectStorer, prefixes []string) (refs []*plumbing.Reference, err error) {
	ep, err := transport.NewEndpoint(url)
	if err != nil {
		return nil, err
	}
	ep.CaBundle = ra.caBundle
	cl, err := client.NewClient(ep)
	if err != nil {
		return nil, err
	}
	sess, err := cl.NewUploadPackSession(ep, ra.auth)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := sess.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seen := map[plumbing.Hash]bool{}
	var wants []plumbing.Hash
	for name, h := range adv.References {
		if !hasAnyPrefix(name, prefixes) {
			continue
		}
		refs = append(refs, plumbing.NewHashReference(plumbing.ReferenceName(name), h))
		if seen[h] {
			continue
		}
		seen[h] = true
		switch err := objects.HasEncodedObject(h); {
		case errors.Is(err, plumbing.ErrObjectNotFound):
			wants = append(wants, h)
		case err != nil:
			// The cache's pack indexes are unreadable.
			return nil, &cacheError{err}
		}
	}
	if len(wants) == 0 {
		return refs, nil
	}
	req := packp.NewUploadPackRequestFromCapabilities(adv.Capabilities)
	req.Wants = wants
	req.Depth = packp.DepthCommits(1)
	if err := req.Capabilities.Set(capability.Shallow); err != nil {
		return nil, err
	}
	if adv.Capabilities.Supports(capability.NoProgress) {
		if err := req.Capabilities.Set(capability.NoProgress); err != nil {
			return nil, err
		}
	}
	resp, err := sess.UploadPack(ctx, req)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := resp.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	var pack io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		pack = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		pack = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	if pw, ok := objects.(storer.PackfileWriter); ok {
		// A repository on disk keeps the pack whole: one file and its
		// index, not a loose file per object.
		err = packfile.WritePackfileToObjectStorage(pw, pack)
	} else {
		var p *packfile.Parser
		if p, err = packfile.NewParserWithStorage(packfile.NewScanner(pack), objects); err == nil {
			_, err = p.Parse()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("pack of %d heads: %w", len(wants), err)
	}
	return refs, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// readCached is a remote read through the cache opts.CacheDir (a bare
// repository of objects only): locked against another read of it, started
// over past MaxCachePacks, and moved aside when it cannot be opened or an
// object fetched or cached cannot be read (the read is then done again
// into a new cache, once).
func readCached(ctx context.Context, opts ReadOptions, ra remoteAccess, prefixes []string) ([]BranchStatus, error) {
	dir := opts.CacheDir
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	unlock, err := lockCache(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if n := cachePacks(dir); n > MaxCachePacks {
		log.Info("fleet cache full; starting it over", "dir", dir, "packs", n, "capacity", MaxCachePacks)
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("cache %s: %w", dir, err)
		}
	}
	for attempt := 0; ; attempt++ {
		out, err := readCachedOnce(ctx, opts, ra, prefixes)
		var ce *cacheError
		if err == nil || !errors.As(err, &ce) || attempt > 0 || ctx.Err() != nil {
			return out, err
		}
		aside, merr := moveCacheAside(dir)
		if merr != nil {
			return nil, errors.Join(err, merr)
		}
		log.Warn("fleet cache unreadable; moved aside, reading again", "dir", dir, "moved_to", aside, "err", ce.err)
	}
}

// cacheError is a read that failed on the cache's own state, not the
// remote's: moving the cache aside and reading again mends it.
type cacheError struct{ err error }

func (e *cacheError) Error() string { return fmt.Sprintf("cache: %v", e.err) }
func (e *cacheError) Unwrap() error { return e.err }

func readCachedOnce(ctx context.Context, opts ReadOptions, ra remoteAccess, prefixes []string) ([]BranchStatus, error) {
	dir := opts.CacheDir
	cache, err := openBare(dir)
	if err != nil {
		return nil, &cacheError{fmt.Errorf("open %s: %w", dir, err)}
	}
	refs, err := fetchHeads(ctx, opts.URL, ra, cache.Storer, prefixes)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	// Everything wanted is in the cache now: a head that cannot be read
	// is the cache's fault.
	st, err := openReadOnly(dir)
	if err != nil {
		return nil, &cacheError{err}
	}
	defer st.Close()
	out, err := readHeads(ctx, st, dir, refs, opts)
	if err != nil && ctx.Err() == nil {
		return nil, &cacheError{err}
	}
	return out, err
}

// cachePacks is the number of packs in the cache dir.
func cachePacks(dir string) int {
	packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
	return len(packs)
}

// moveCacheAside renames the cache dir to dir.corrupt (replacing an
// earlier one: one is kept to look at, not one per failure).
func moveCacheAside(dir string) (string, error) {
	aside := dir + ".corrupt"
	if err := os.RemoveAll(aside); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(dir, aside); err != nil {
		return "", fmt.Errorf("cache: move aside: %w", err)
	}
	return aside, nil
}

// lockCache takes dir.lock exclusively (flock), waiting for another read of
// the same cache (a fleet page and a `gitgw fleet` run) to finish: two
// reads at once would each start the cache over or move it aside under
// the other. The kernel drops the lock of a process that dies.
func lockCache(dir string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	f, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("cache: lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}
