package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/gitgw/gitgw/cue/spec"
)

// Sandbox runs every evaluation of a site in a child process with a memory
// and CPU budget. CUE evaluation cannot be interrupted, and a few hundred
// bytes of CUE can ask for gigabytes (each line doubling a string): in the
// agent's own process that would take VRRP and the proxy down with it. The
// child sets its own rlimits (data segment and CPU time) before it reads
// the site; when it dies of them, the load fails with a positioned error
// and the agent keeps running what it last applied.
type Sandbox struct {
	// Command starts the child: a program that calls ServeChild, e.g. the
	// gitgw binary with its hidden evaluation subcommand.
	Command []string
	// Env is added to the child's environment.
	Env []string
	// Memory is the child's memory limit in bytes (RLIMIT_DATA: the
	// private writable memory the Go heap lives in; RLIMIT_AS would also
	// count the 1.5 GB of address space the Go runtime reserves and never
	// uses); 0 means DefaultMemory.
	Memory int64
	// CPU is the child's CPU-time limit (RLIMIT_CPU, whole seconds);
	// 0 means DefaultCPU.
	CPU time.Duration
	// Timeout bounds the child's wall-clock time; 0 means twice CPU.
	Timeout time.Duration
}

// The default budget: a site of 1,000 gateway pairs evaluates in about a
// second of CPU and 300 MB (BenchmarkPlanScale), well inside it.
const (
	DefaultMemory = 1 << 30
	DefaultCPU    = 60 * time.Second
)

// maxResultBytes caps what the parent reads back from a child: the
// evaluated site, as JSON, may not be much larger than its sources.
const maxResultBytes = 2 * maxSiteBytes

type sandboxKey struct{}

// WithSandbox returns a context under which Load, LoadWith, SitePolicies
// and Locate evaluate in a child process run by sb. Without one they
// evaluate in the calling process (tests, tools).
func WithSandbox(ctx context.Context, sb *Sandbox) context.Context {
	return context.WithValue(ctx, sandboxKey{}, sb)
}

func sandboxFrom(ctx context.Context) *Sandbox {
	sb, _ := ctx.Value(sandboxKey{}).(*Sandbox)
	if sb == nil || len(sb.Command) == 0 {
		return nil
	}
	return sb
}

func (sb *Sandbox) memory() int64 {
	if sb.Memory > 0 {
		return sb.Memory
	}
	return DefaultMemory
}

func (sb *Sandbox) cpu() time.Duration {
	if sb.CPU > 0 {
		return sb.CPU
	}
	return DefaultCPU
}

func (sb *Sandbox) timeout() time.Duration {
	if sb.Timeout > 0 {
		return sb.Timeout
	}
	return 2 * sb.cpu()
}

// The operations a child performs.
const (
	opLoad     = "load"
	opPolicies = "policies"
	opLocate   = "locate"
	opLabels   = "labels"
)

// request is what the parent sends a child on its standard input.
type request struct {
	Op     string        `json:"op"`
	Dir    string        `json:"dir"`
	Node   string        `json:"node,omitempty"`
	Scope  Scope         `json:"scope,omitempty"`
	Errs   Errors        `json:"errs,omitempty"` // locate
	Memory int64         `json:"memory"`
	CPU    time.Duration `json:"cpu"`
}

// response is what a child writes on its standard output.
type response struct {
	Nodes []string   `json:"nodes,omitempty"`
	Scope Scope      `json:"scope,omitempty"`
	View  *spec.Node `json:"view,omitempty"`
	// Whole is the whole site decoded, for a load without a node
	// (`validate` needs it, and the parent has no CUE value to decode).
	Whole    *spec.Site `json:"whole,omitempty"`
	WholeErr *failure   `json:"whole_err,omitempty"`
	// Errs are positioned errors (policies, locate: the result).
	Errs Errors   `json:"errs,omitempty"`
	Err  *failure `json:"err,omitempty"`
	// Labels are every node's labels (labels; load, when the node's view
	// has rollout waves).
	Labels map[string]map[string]string `json:"labels,omitempty"`
	// Positions index the node's view in the site's files (load with a
	// node), so that the parent places policy findings without
	// evaluating again.
	Positions positions `json:"positions,omitempty"`
}

// failure carries an error across the process boundary: positioned
// errors stay positioned.
type failure struct {
	Errs    Errors            `json:"errs,omitempty"`
	Msg     string            `json:"msg,omitempty"`
	Unknown *UnknownNodeError `json:"unknown_node,omitempty"`
}

func toFailure(err error) *failure {
	if err == nil {
		return nil
	}
	if errs, ok := AsErrors(err); ok {
		return &failure{Errs: errs}
	}
	if un := (*UnknownNodeError)(nil); errors.As(err, &un) {
		return &failure{Msg: err.Error(), Unknown: un}
	}
	return &failure{Msg: err.Error()}
}

func (f *failure) err() error {
	switch {
	case f == nil:
		return nil
	case len(f.Errs) > 0:
		return f.Errs
	case f.Unknown != nil:
		return f.Unknown
	default:
		return errors.New(f.Msg)
	}
}

// ServeChild is the child's side: it reads one request from r, limits its
// own process, evaluates, and writes the response to w. The gitgw binary
// calls it from a hidden subcommand; a test binary calls it from TestMain.
func ServeChild(r io.Reader, w io.Writer) error {
	var req request
	if err := json.NewDecoder(io.LimitReader(r, maxResultBytes)).Decode(&req); err != nil {
		return fmt.Errorf("loader: child: read the request: %w", err)
	}
	if err := limitSelf(req.Memory, req.CPU); err != nil {
		return err
	}
	ctx := context.Background()
	var resp response
	switch req.Op {
	case opLoad:
		s, view, err := LoadWith(ctx, req.Dir, req.Node, Options{Scope: req.Scope})
		resp.Err = toFailure(err)
		if err == nil {
			resp.Nodes, resp.Scope, resp.View = s.Nodes, s.Scope, view
			if req.Node == "" {
				resp.Whole, err = s.Whole()
				resp.WholeErr = toFailure(err)
			}
			if req.Node != "" && s.root.Exists() {
				if idx, ok := indexPositions(s.Dir, s.root, req.Node, selectFor(s.root, req.Node)); ok {
					resp.Positions = idx
				}
			}
			if view != nil && len(view.Site.Rollout.Waves) > 0 {
				// The rollout reads them from this evaluation; a
				// failure to read them is its to report.
				resp.Labels, _ = s.NodeLabels()
			}
		}
	case opPolicies:
		errs, err := SitePolicies(ctx, req.Dir)
		resp.Errs, resp.Err = errs, toFailure(err)
	case opLocate:
		errs, err := Locate(ctx, req.Dir, req.Errs)
		resp.Errs, resp.Err = errs, toFailure(err)
	case opLabels:
		labels, err := NodeLabels(ctx, req.Dir)
		resp.Labels, resp.Err = labels, toFailure(err)
	default:
		return fmt.Errorf("loader: child: unknown operation %q", req.Op)
	}
	if err := json.NewEncoder(w).Encode(&resp); err != nil {
		return fmt.Errorf("loader: child: write the response: %w", err)
	}
	return nil
}

// limitSelf sets the child's own budget before it reads the site: its
// data segment, which holds the Go heap (the runtime's soft limit a little
// below it, so that the collector works hard before an allocation fails),
// and its CPU time (the kernel sends SIGKILL at the hard limit).
func limitSelf(memory int64, cpu time.Duration) error {
	if memory <= 0 || cpu <= 0 {
		return errors.New("loader: child: no budget in the request")
	}
	secs := uint64((cpu + time.Second - 1) / time.Second)
	if err := syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: secs, Max: secs}); err != nil {
		return fmt.Errorf("loader: child: limit CPU time: %w", err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: uint64(memory), Max: uint64(memory)}); err != nil {
		return fmt.Errorf("loader: child: limit memory: %w", err)
	}
	debug.SetMemoryLimit(memory / 10 * 7)
	return nil
}

// run sends req to a new child and reads its response. An evaluation the
// budget stopped is reported as a positioned error of the site (it is the
// commit's doing: retrying will not help), placed in the site's file when
// the site has one, else at the site.
func (sb *Sandbox) run(ctx context.Context, req request) (*response, error) {
	req.Memory, req.CPU = sb.memory(), sb.cpu()
	in, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("loader: sandbox: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, sb.timeout())
	defer cancel()
	cmd := exec.CommandContext(cctx, sb.Command[0], sb.Command[1:]...)
	cmd.Env = append(os.Environ(), sb.Env...)
	cmd.Stdin = bytes.NewReader(in)
	var stderr headBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("loader: sandbox: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loader: sandbox: start %s: %w", sb.Command[0], err)
	}
	out, rerr := io.ReadAll(io.LimitReader(stdout, maxResultBytes+1))
	if len(out) > maxResultBytes {
		_ = cmd.Process.Kill()
	}
	werr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case len(out) > maxResultBytes:
		return nil, sb.budgetError(req, fmt.Sprintf("the evaluated site is larger than %d MiB", maxResultBytes>>20))
	case cctx.Err() != nil:
		return nil, sb.budgetError(req, fmt.Sprintf("it took longer than %s", sb.timeout()))
	case werr != nil:
		return nil, sb.childError(req, cmd.ProcessState, stderr.String(), werr)
	case rerr != nil:
		return nil, fmt.Errorf("loader: sandbox: read the result: %w", rerr)
	}
	var resp response
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("loader: sandbox: decode the result: %w", err)
	}
	return &resp, nil
}

// childError says why a child failed: its CPU or memory budget, or
// something else (the first line of what it printed).
func (sb *Sandbox) childError(req request, ps *os.ProcessState, stderr string, err error) error {
	ws, _ := ps.Sys().(syscall.WaitStatus)
	cpu := ps.UserTime() + ps.SystemTime()
	switch {
	case ws.Signaled() && (ws.Signal() == syscall.SIGKILL || ws.Signal() == syscall.SIGXCPU) && cpu >= sb.cpu()-time.Second:
		return sb.budgetError(req, fmt.Sprintf("it used more than %s of CPU time", sb.cpu()))
	case strings.Contains(stderr, "out of memory") || strings.Contains(stderr, "cannot allocate memory"),
		// Thread stacks count against RLIMIT_DATA too: near the budget,
		// the runtime's next OS thread is refused before the heap is, and
		// the child dies in pthread_create (seen under load, when the
		// runtime wants a new thread at the wrong moment).
		strings.Contains(stderr, "pthread_create failed") && peakRSS(ps) >= sb.memory()/2:
		return sb.budgetError(req, fmt.Sprintf("it needed more than %d MiB of memory", sb.memory()>>20))
	}
	line, _, _ := strings.Cut(strings.TrimSpace(stderr), "\n")
	if len(line) > 200 {
		line = line[:200]
	}
	return fmt.Errorf("loader: evaluation of %s failed (%v): %s", req.Dir, err, line)
}

// peakRSS is a finished child's peak resident set, in bytes (0 if unknown).
func peakRSS(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10
	}
	return 0
}

// budgetError is the error of an evaluation the budget stopped, an error
// of the site: positioned at the one CUE file the evaluation read when
// there was only one, else naming the site.
func (sb *Sandbox) budgetError(req request, why string) error {
	e := Error{Msg: "evaluation stopped: " + why + " (look for values that grow with each reference, such as strings or lists added to themselves, and for comprehensions over large ranges)"}
	if files := cueFiles(req.Dir, req.Op == opPolicies); len(files) == 1 {
		e.File, e.Line, e.Col = files[0], 1, 1
	} else {
		e.Msg = fmt.Sprintf("%s (site %s)", e.Msg, req.Dir)
	}
	return Errors{e}
}

// cueFiles lists the site's CUE files an evaluation may read (names only,
// as readSite finds them; the policies only when asked), without
// cue.mod/module.cue.
func cueFiles(dir string, policies bool) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		name := d.Name()
		switch {
		case rel == ".":
			return nil
		case strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || (!policies && rel == PoliciesDir):
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		case d.Type().IsRegular() && strings.HasSuffix(name, ".cue") && rel != "cue.mod/module.cue":
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// headBuffer keeps the first 4 KiB written to it (a Go runtime's fatal
// error starts with its reason).
type headBuffer struct{ bytes.Buffer }

func (b *headBuffer) Write(p []byte) (int, error) {
	if room := 4096 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// load is LoadWith in a child.
func (sb *Sandbox) load(ctx context.Context, abs, node string, o Options) (*Site, *spec.Node, error) {
	resp, err := sb.run(ctx, request{Op: opLoad, Dir: abs, Node: node, Scope: o.Scope})
	if err != nil {
		return nil, nil, err
	}
	if err := resp.Err.err(); err != nil {
		return nil, nil, err
	}
	s := &Site{Dir: abs, Nodes: resp.Nodes, Scope: resp.Scope, whole: resp.Whole, wholeErr: resp.WholeErr.err(), sandbox: sb, labels: resp.Labels,
		positions: resp.Positions}
	return s, resp.View, nil
}

// ChildCommand is the hidden subcommand of the gitgw binary that serves
// ServeChild: the child's side of Self's sandbox.
const ChildCommand = "__evaluate-site"

// Self is the sandbox that runs this very binary's ChildCommand, through
// /proc/self/exe so that an upgrade that replaced the file on disk still
// evaluates with the same code; memory is in bytes.
func Self(memory int64, cpu, timeout time.Duration) *Sandbox {
	return &Sandbox{Command: []string{"/proc/self/exe", ChildCommand}, Memory: memory, CPU: cpu, Timeout: timeout}
}
