package gitrepo

// Liveness without history. A fleet view must tell a stopped agent from a
// quiet one, but a commit per heartbeat would be millions of commits a
// day at a fleet's size. Instead each node replaces one ref,
// refs/gitgw/alive/NODE (outside refs/heads: clones and branch listings do
// not see it), with a tiny parentless commit: the time, the applied
// commit, the agent's version and the bound it promises to refresh within.
// The replaced commits are unreferenced and go with the server's gc: the
// repository holds one such commit per node, a few hundred bytes.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// AliveRefPrefix is where the nodes' liveness refs live.
const AliveRefPrefix = "refs/gitgw/alive/"

// Trailer keys of an alive commit (besides Gitgw-Node and Gitgw-Applied).
const (
	TrailerAliveBound   = "Gitgw-Alive-Bound"
	TrailerAgentVersion = "Gitgw-Agent-Version"
	TrailerStatusHead   = "Gitgw-Status"
	// TrailerAgentID names the agent process that refreshed the ref
	// (AgentID), so that a second agent started under the same node name
	// can tell it is not the first one and refuse to start.
	TrailerAgentID = "Gitgw-Agent-Id"
)

// aliveMisses is how many intervals a node may miss before fleet calls it
// stale: one late refresh (a slow Git server) is not an outage.
const aliveMisses = 3

// Alive is a node's last liveness refresh.
type Alive struct {
	Node, Commit string
	// Time the node refreshed it; Bound the longest it promised to go
	// without refreshing.
	Time  time.Time
	Bound time.Duration
	// Applied is the site commit the node runs, Version its agent's.
	Applied, Version string
	// Agent is the agent process that refreshed it; nil for an agent that
	// does not say (older than the trailer).
	Agent *AgentID

	signature string
	payload   []byte
}

// Stale says whether the node broke its promise by now: no refresh within
// its bound (or no readable bound).
func (a Alive) Stale(now time.Time) bool {
	return a.Bound <= 0 || now.Sub(a.Time) > a.Bound
}

// VerifySignedBy checks that the alive commit is signed by key, as a
// status branch's head is (BranchStatus.VerifySignedBy).
func (a Alive) VerifySignedBy(key string) (Signer, error) {
	return BranchStatus{Node: a.Node, Commit: a.Commit, Time: a.Time, signature: a.signature, payload: a.payload}.VerifySignedBy(key)
}

// readAlive parses the alive commit c of node.
func readAlive(node string, c *object.Commit) (Alive, error) {
	t := CommitTrailers(c.Message)
	a := Alive{Node: node, Commit: c.Hash.String(), Time: c.Committer.When,
		Applied: t.Get(TrailerApplied), Version: t.Get(TrailerAgentVersion)}
	if id := t.Get(TrailerAgentID); id != "" {
		if aid, err := ParseAgentID(id); err == nil {
			a.Agent = &aid
		}
	}
	if b := t.Get(TrailerAliveBound); b != "" {
		d, err := time.ParseDuration(b)
		if err != nil {
			return a, fmt.Errorf("alive commit %s: %s: %w", short(a.Commit), TrailerAliveBound, err)
		}
		a.Bound = d
	}
	if c.PGPSignature != "" {
		msg := &plumbing.MemoryObject{}
		if err := c.EncodeWithoutSignature(msg); err != nil {
			return a, err
		}
		var err error
		if a.payload, err = objectBytes(msg); err != nil {
			return a, err
		}
		a.signature = c.PGPSignature
	}
	return a, nil
}

// aliveRef is the node's liveness ref.
func (w *StatusWriter) aliveRef() plumbing.ReferenceName {
	return plumbing.ReferenceName(AliveRefPrefix + w.opts.Node)
}

// pushAlive replaces the node's alive ref by a fresh commit. The commit is
// built in memory: a node makes one a minute, and none of them is worth a
// file in the state dir.
func (w *StatusWriter) pushAlive(ctx context.Context) error {
	applied, statusHead := "", ""
	if ref, err := w.pushRepo.Storer.Reference(w.branch); err == nil {
		statusHead = ref.Hash().String()
		if c, err := object.GetCommit(w.pushRepo.Storer, ref.Hash()); err == nil {
			applied = CommitTrailers(c.Message).Get(TrailerApplied)
		}
	}
	mem := memory.NewStorage()
	tree := mem.NewEncodedObject()
	if err := (&object.Tree{}).Encode(tree); err != nil {
		return err
	}
	treeHash, err := mem.SetEncodedObject(tree)
	if err != nil {
		return err
	}
	bound := time.Duration(aliveMisses) * w.opts.AliveInterval
	msg := Message{Subject: "alive(" + w.opts.Node + ")", Applied: applied, Trailers: []Trailer{
		{TrailerAliveBound, bound.String()},
		{TrailerStatusHead, statusHead},
		{TrailerAgentVersion, w.opts.AgentVersion},
	}}
	if !w.opts.Agent.IsZero() {
		msg.Trailers = append(msg.Trailers, Trailer{TrailerAgentID, w.opts.Agent.String()})
	}
	now := time.Now()
	if w.now != nil {
		now = w.now()
	}
	sig := identity(w.opts.Node, now)
	c := &object.Commit{Author: sig, Committer: sig, Message: msg.format(w.opts.Node), TreeHash: treeHash}
	if w.signer != nil {
		if err := w.signer.signCommit(c); err != nil {
			return err
		}
	}
	obj := mem.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return err
	}
	h, err := mem.SetEncodedObject(obj)
	if err != nil {
		return err
	}
	ra, err := w.creds.access(w.opts.URL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, w.opts.PushTimeout)
	defer cancel()
	_, err = pushRef(ctx, mem, w.opts.URL, ra, pushSpec{ref: w.aliveRef(), head: h, replace: true})
	return err
}

// runAlive refreshes the alive ref every AliveInterval (jittered by a
// tenth, so that a fleet started at once does not refresh in step) until
// ctx ends or the writer closes.
func (w *StatusWriter) runAlive(ctx context.Context) {
	if w.opts.AliveInterval <= 0 {
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.done:
			return
		case <-t.C:
		}
		err := w.pushAlive(ctx)
		switch {
		case err == nil:
			if lastErr != "" {
				w.log.Info("alive ref refreshed again")
			}
			lastErr = ""
		case errors.Is(err, context.Canceled):
			return
		case err.Error() != lastErr:
			lastErr = err.Error()
			w.log.Warn("refresh alive ref; will retry", "ref", w.aliveRef(), "err", strings.TrimSpace(err.Error()))
		}
		t.Reset(Jitter(w.opts.AliveInterval, 0.1))
	}
}

// AgentID identifies one agent process across hosts and restarts: the
// host (its machine id, and its name for people), the boot, and the
// process (its PID and when it started, in clock ticks since boot as
// /proc/PID/stat gives it, so that a reused PID is not taken for it).
type AgentID struct {
	Machine, Host, Boot string
	PID                 int
	StartTicks          uint64
	Started             time.Time
}

// IsZero says the identity is unknown.
func (id AgentID) IsZero() bool { return id.Machine == "" && id.Boot == "" && id.PID == 0 }

// SameBoot says whether id ran on the host and boot of other: only then
// can its process be looked up by PID.
func (id AgentID) SameBoot(other AgentID) bool {
	return id.Machine != "" && id.Machine == other.Machine && id.Boot != "" && id.Boot == other.Boot
}

// String is the trailer form:
// "machine=M host=H boot=B pid=P ticks=T started=RFC3339".
func (id AgentID) String() string {
	return fmt.Sprintf("machine=%s host=%s boot=%s pid=%d ticks=%d started=%s",
		orDash(id.Machine), orDash(id.Host), orDash(id.Boot), id.PID, id.StartTicks, id.Started.UTC().Format(time.RFC3339))
}

// Describe is the identity for a message: "pid 412 on gw-b (started …)".
func (id AgentID) Describe() string {
	return fmt.Sprintf("pid %d on host %s (machine %s, started %s)", id.PID, orDash(id.Host), orDash(id.Machine), id.Started.UTC().Format(time.RFC3339))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ParseAgentID reads the trailer form of String.
func ParseAgentID(s string) (AgentID, error) {
	var id AgentID
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return id, fmt.Errorf("agent id %q: %q is not key=value", s, f)
		}
		if v == "-" {
			v = ""
		}
		var err error
		switch k {
		case "machine":
			id.Machine = v
		case "host":
			id.Host = v
		case "boot":
			id.Boot = v
		case "pid":
			id.PID, err = strconv.Atoi(v)
		case "ticks":
			id.StartTicks, err = strconv.ParseUint(v, 10, 64)
		case "started":
			id.Started, err = time.Parse(time.RFC3339, v)
		}
		if err != nil {
			return id, fmt.Errorf("agent id %q: %s: %w", s, k, err)
		}
	}
	return id, nil
}

// ReadAlive reads one node's alive ref (nil when it has none): what an
// agent checks at start, before it reports under the node's name. Only
// that ref is fetched from a remote repository.
func ReadAlive(ctx context.Context, opts ReadOptions, node string) (*Alive, error) {
	name := plumbing.ReferenceName(AliveRefPrefix + node)
	fail := func(err error) (*Alive, error) {
		return nil, fmt.Errorf("gitrepo: read %s of %s: %w", name, redact(opts.URL), err)
	}
	var st storer.Storer
	if isLocal(opts.URL) {
		dir, err := localGitDir(opts.URL)
		if err != nil {
			return fail(err)
		}
		fs, err := openReadOnly(dir)
		if err != nil {
			return fail(err)
		}
		defer fs.Close()
		st = fs
	} else {
		creds := Credentials{SSHKeyFile: opts.SSHKeyFile, KnownHostsFile: opts.KnownHostsFile, TokenFile: opts.TokenFile, CAFile: opts.CAFile}
		ra, err := creds.access(opts.URL)
		if err != nil {
			return fail(err)
		}
		mem := memory.NewStorage()
		remote := git.NewRemote(mem, &config.RemoteConfig{Name: "origin", URLs: []string{opts.URL}})
		err = fetchMoving(ctx, remote, &git.FetchOptions{
			RefSpecs: []config.RefSpec{config.RefSpec("+" + name + ":" + name)}, Auth: ra.auth, CABundle: ra.caBundle, Tags: git.NoTags,
		})
		var noMatch git.NoMatchingRefSpecError
		switch {
		case errors.As(err, &noMatch), errors.Is(err, transport.ErrEmptyRemoteRepository):
			return nil, nil
		case err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate):
			return fail(err)
		}
		st = mem
	}
	ref, err := st.Reference(name)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil, nil
	}
	if err != nil {
		return fail(err)
	}
	c, err := object.GetCommit(st, ref.Hash())
	if err != nil {
		return fail(err)
	}
	a, err := readAlive(node, c)
	if err != nil {
		return fail(err)
	}
	return &a, nil
}
