package gitrepo

import (
	"bufio"
	"bytes"
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
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/storage/memory"
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
func fetchHeads(ctx context.Context, url string, ra remoteAccess, f fetchInto, prefixes []string) ([]*plumbing.Reference, error) {
	var err error
	for range fetchAttempts {
		var refs []*plumbing.Reference
		refs, err = fetchHeadsOnce(ctx, url, ra, f, prefixes)
		if err == nil || !strings.Contains(err.Error(), "not our ref") || ctx.Err() != nil {
			return refs, err
		}
	}
	return nil, err
}

// fetchInto says where fetched objects go: parsed into memory (read from
// there at once: a pack is inflated once, not once to index it on disk and
// again to read it) and, with a cache, also kept there as the pack the
// server sent, with its index.
type fetchInto struct {
	// have holds the objects not to fetch again (the cache, or mem).
	have storer.EncodedObjectStorer
	mem  *memory.Storage
	// packDir, when not empty, is the cache's objects/pack.
	packDir string
}

func fetchHeadsOnce(ctx context.Context, url string, ra remoteAccess, f fetchInto, prefixes []string) (refs []*plumbing.Reference, err error) {
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
		switch err := f.have.HasEncodedObject(h); {
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
	// No haves are sent: a thin pack would have no base to resolve.
	req.Capabilities.Delete(capability.ThinPack)
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
	if f.packDir == "" {
		var p *packfile.Parser
		if p, err = packfile.NewParserWithStorage(packfile.NewScanner(pack), f.mem); err == nil {
			_, err = p.Parse()
		}
	} else {
		err = parseAndKeep(pack, f.mem, f.packDir)
	}
	if err != nil {
		return nil, fmt.Errorf("pack of %d heads: %w", len(wants), err)
	}
	return refs, nil
}

// parseAndKeep parses a pack into mem and writes it, with the index the
// parse built, into packDir. The index is renamed into place before the
// pack: go-git lists packs by their .pack file, so that a crash between
// the two leaves an index that nothing reads, never a pack without one.
func parseAndKeep(pack io.Reader, mem *memory.Storage, packDir string) (err error) {
	tmp, err := os.CreateTemp(packDir, "tmp_pack_")
	if err != nil {
		return &cacheError{err}
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	buf := bufio.NewWriterSize(tmp, 1<<16)
	idx := new(idxfile.Writer)
	p, err := packfile.NewParserWithStorage(packfile.NewScanner(io.TeeReader(pack, buf)), mem, idx)
	if err != nil {
		return err
	}
	sum, err := p.Parse()
	if err != nil {
		return err
	}
	if err := buf.Flush(); err != nil {
		return &cacheError{err}
	}
	if err := tmp.Close(); err != nil {
		return &cacheError{err}
	}
	mi, err := idx.Index()
	if err != nil {
		return err
	}
	var enc bytes.Buffer
	if _, err := idxfile.NewEncoder(&enc).Encode(mi); err != nil {
		return err
	}
	base := filepath.Join(packDir, "pack-"+sum.String())
	if err := writeFileAtomic(base+".idx", enc.Bytes()); err != nil {
		return &cacheError{err}
	}
	if err := os.Rename(tmp.Name(), base+".pack"); err != nil {
		return &cacheError{err}
	}
	return nil
}

// writeFileAtomic writes a file whole or not at all (a temporary file
// renamed).
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "tmp_idx_")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// layered reads an object from front (just fetched, in memory) or else
// from the cache.
type layered struct {
	front *memory.Storage
	storer.EncodedObjectStorer
}

func (l layered) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if o, err := l.front.EncodedObject(t, h); err == nil {
		return o, nil
	}
	return l.EncodedObjectStorer.EncodedObject(t, h)
}

func (l layered) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	if n, err := l.front.EncodedObjectSize(h); err == nil {
		return n, nil
	}
	return l.EncodedObjectStorer.EncodedObjectSize(h)
}

func (l layered) HasEncodedObject(h plumbing.Hash) error {
	if l.front.HasEncodedObject(h) == nil {
		return nil
	}
	return l.EncodedObjectStorer.HasEncodedObject(h)
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
	// What a read killed while it wrote left behind (no other read runs:
	// the lock is held).
	tmps, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "tmp_*"))
	for _, t := range tmps {
		_ = os.Remove(t)
	}
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
	if _, err := openBare(dir); err != nil {
		return nil, &cacheError{fmt.Errorf("open %s: %w", dir, err)}
	}
	have, err := openReadOnly(dir)
	if err != nil {
		return nil, &cacheError{err}
	}
	defer have.Close()
	mem := memory.NewStorage()
	refs, err := fetchHeads(ctx, opts.URL, ra, fetchInto{have: have, mem: mem, packDir: filepath.Join(dir, "objects", "pack")}, prefixes)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	// Everything wanted is here now: a head that cannot be read is the
	// cache's fault.
	out, err := readHeads(ctx, layered{mem, have}, dir, mem, refs, opts)
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
