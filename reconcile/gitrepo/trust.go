package gitrepo

// The trust anchor. Strict verification needs a commit it already trusts:
// everything reachable from it is, everything newer must carry a trusted
// signature. That anchor is kept in a file of its own (not last-applied,
// which says what runs, not what was verified) and only ever moves to a
// commit whose history since the previous anchor was verified. A node with
// no anchor — new, or its state lost — does not fall back to trusting
// whatever the branch holds: the operator names one (--trust-anchor).

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/gitgw/gitgw/internal/statefile"
)

// anchorState is the content of the anchor file.
type anchorState struct {
	Commit string `json:"commit"`
	// Repo and Ref say which history the anchor belongs to: an anchor of
	// another repository or branch anchors nothing.
	Repo       string    `json:"repo"`
	Ref        string    `json:"ref"`
	VerifiedAt time.Time `json:"verified_at"`
}

// ParseCommit reads a full commit hash (40 hex digits), as --trust-anchor
// takes it: an abbreviation could name another commit tomorrow.
func ParseCommit(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != 40 {
		return "", fmt.Errorf("commit %q: want the full 40-digit hash", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("commit %q: not a hexadecimal hash", s)
	}
	return s, nil
}

// loadAnchor sets strict mode's anchor: the one the anchor file holds for
// this repository and branch, else TrustAnchor, else it refuses to open.
func (s *Source) loadAnchor() error {
	v := s.opts.Verifier
	if v == nil || v.mode != VerifyStrict {
		return nil
	}
	flag := ""
	if s.opts.TrustAnchor != "" {
		c, err := ParseCommit(s.opts.TrustAnchor)
		if err != nil {
			return fmt.Errorf("gitrepo: --trust-anchor: %w", err)
		}
		flag = c
	}
	if s.opts.AnchorFile == "" {
		return errors.New("gitrepo: strict verification needs a file for its trust anchor")
	}
	var st anchorState
	found, err := statefile.Load(s.opts.AnchorFile, func(b []byte) error {
		if err := json.Unmarshal(b, &st); err != nil {
			return err
		}
		c, err := ParseCommit(st.Commit)
		st.Commit = c
		return err
	})
	switch {
	case err != nil:
		s.log.Error("trust anchor unreadable; it is not used", "file", s.opts.AnchorFile, "err", err)
		found = false
	case found && (st.Repo != s.opts.URL || st.Ref != s.opts.Ref):
		s.log.Warn("trust anchor belongs to another repository or branch; it is not used",
			"file", s.opts.AnchorFile, "anchor_repo", redact(st.Repo), "anchor_ref", st.Ref)
		found = false
	}
	switch {
	case found:
		s.anchor = plumbing.NewHash(st.Commit)
		s.log.Info("strict verification from the trust anchor", "commit", short(st.Commit), "verified_at", st.VerifiedAt)
		if flag != "" && flag != st.Commit {
			s.log.Warn("--trust-anchor is not used: the state dir holds an anchor (remove the file to start from the flag)",
				"file", s.opts.AnchorFile, "trust_anchor", short(flag))
		}
	case flag != "":
		s.anchor = plumbing.NewHash(flag)
		s.log.Info("strict verification from --trust-anchor", "commit", short(flag))
	default:
		return fmt.Errorf("gitrepo: --verify-signatures strict: no trust anchor: %s holds none for %s %s (a new node, or its state lost); "+
			"name the last commit you trust with --trust-anchor COMMIT", s.opts.AnchorFile, redact(s.opts.URL), s.opts.Ref)
	}
	return nil
}

// admit decides whether tip may be used: in head mode its own signature,
// in strict mode that of every commit reachable from it and not from the
// anchor (the anchor itself is trusted as it is).
func (s *Source) admit(ctx context.Context, tip plumbing.Hash) error {
	v := s.opts.Verifier
	if v == nil || v.mode == VerifyOff || tip == s.verified {
		return nil
	}
	since := ""
	if v.mode == VerifyStrict {
		if tip == s.anchor {
			s.verified = tip
			return nil
		}
		if _, err := s.repo.CommitObject(s.anchor); err != nil {
			return fmt.Errorf("gitrepo: trust anchor %s is not in the history of %s %s (%s, or --trust-anchor): %w",
				short(s.anchor.String()), redact(s.opts.URL), s.opts.Ref, s.opts.AnchorFile, err)
		}
		since = s.anchor.String()
	}
	signer, err := s.verifyLocked(ctx, v, since, tip.String())
	if err != nil {
		return err
	}
	s.verified = tip
	s.log.Debug("commit signature verified", "commit", short(tip.String()), "mode", v.mode, "since", short(since), "signer", signer.String())
	return nil
}

// advanceAnchor moves strict mode's anchor to tip, verified and checked
// out. A failed write keeps the older anchor on disk: a restart then
// verifies more, never less.
func (s *Source) advanceAnchor(tip plumbing.Hash) {
	v := s.opts.Verifier
	if v == nil || v.mode != VerifyStrict || tip == s.anchor {
		return
	}
	st := anchorState{Commit: tip.String(), Repo: s.opts.URL, Ref: s.opts.Ref, VerifiedAt: time.Now().UTC()}
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = statefile.Write(s.opts.AnchorFile, append(b, '\n'), 0o600)
	}
	if err != nil {
		s.log.Error("cannot persist the trust anchor; keeping the older one on disk", "commit", short(tip.String()), "err", err)
	}
	s.anchor = tip
}

// TrustAnchor is strict mode's anchor ("" in other modes).
func (s *Source) TrustAnchor() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.anchor.IsZero() {
		return ""
	}
	return s.anchor.String()
}
