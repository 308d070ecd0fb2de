package gitrepo

// Signed commits. A gateway applies whatever its branch says, so whoever
// can push can reconfigure the front door; verification narrows that to
// whoever holds a trusted key. Git signs commits in two formats, both
// stored in the commit's gpgsig header: OpenPGP (checked with go-git's
// Commit.Verify, i.e. ProtonMail go-crypto) and SSH signatures
// (PROTOCOL.sshsig, namespace "git"), checked here against an
// allowed_signers file as `ssh-keygen -Y verify` does.

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"
)

// VerifyMode says which commits must carry a trusted signature.
type VerifyMode string

// The verification modes.
const (
	// VerifyOff checks nothing.
	VerifyOff VerifyMode = ""
	// VerifyHead: the commit to apply must be signed by a trusted key.
	VerifyHead VerifyMode = "head"
	// VerifyStrict: every commit since the trust anchor (merged branches
	// included) must be signed by a trusted key.
	VerifyStrict VerifyMode = "strict"
)

// ParseVerifyMode reads a --verify-signatures value ("", "off", "head",
// "strict").
func ParseVerifyMode(s string) (VerifyMode, error) {
	switch s {
	case "", "off", "none":
		return VerifyOff, nil
	case "head":
		return VerifyHead, nil
	case "strict":
		return VerifyStrict, nil
	}
	return VerifyOff, fmt.Errorf("gitrepo: verify mode %q: want head or strict", s)
}

// ErrUnsigned and ErrUntrusted classify a *SignatureError.
var (
	ErrUnsigned  = errors.New("commit is not signed")
	ErrUntrusted = errors.New("commit is not signed by a trusted key")
)

// SignatureError says which commit failed verification and why.
type SignatureError struct {
	Commit string
	// Kind is ErrUnsigned or ErrUntrusted.
	Kind error
	// Detail is the verifier's reason ("unknown key SHA256:…", "bad
	// signature").
	Detail string
}

func (e *SignatureError) Error() string {
	s := fmt.Sprintf("gitrepo: verify %s: %v", short(e.Commit), e.Kind)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is matches ErrUnsigned or ErrUntrusted.
func (e *SignatureError) Is(target error) bool { return target == e.Kind }

// Signer is who signed a verified commit.
type Signer struct {
	// Format is "openpgp" or "ssh".
	Format string
	// Key is the key's fingerprint (hex for OpenPGP, SHA256:… for SSH).
	Key string
	// Identity is the OpenPGP key's first identity or the SSH principals.
	Identity string
}

func (s Signer) String() string { return s.Format + " " + s.Key + " (" + s.Identity + ")" }

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	Mode VerifyMode
	// TrustedKeys is an armored OpenPGP keyring (one or more public keys).
	TrustedKeys []byte
	// AllowedSigners is an ssh allowed_signers file (see ssh-keygen(1)).
	AllowedSigners []byte
}

// VerifierFromFiles reads the keyring and the allowed signers from files;
// an empty name is skipped.
func VerifierFromFiles(mode VerifyMode, trustedKeys, allowedSigners string) (*Verifier, error) {
	o := VerifierOptions{Mode: mode}
	for _, f := range []struct {
		name string
		into *[]byte
	}{{trustedKeys, &o.TrustedKeys}, {allowedSigners, &o.AllowedSigners}} {
		if f.name == "" {
			continue
		}
		b, err := os.ReadFile(f.name)
		if err != nil {
			return nil, fmt.Errorf("gitrepo: verifier: %w", err)
		}
		*f.into = b
	}
	return NewVerifier(o)
}

// Verifier checks commit signatures against trusted keys.
type Verifier struct {
	mode    VerifyMode
	ring    string
	pgp     openpgp.EntityList
	signers []AllowedSigner
}

// NewVerifier parses the trusted keys. A mode other than VerifyOff needs
// at least one key.
func NewVerifier(o VerifierOptions) (*Verifier, error) {
	v := &Verifier{mode: o.Mode}
	if len(bytes.TrimSpace(o.TrustedKeys)) > 0 {
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(o.TrustedKeys))
		if err != nil {
			return nil, fmt.Errorf("gitrepo: verifier: read OpenPGP keyring: %w", err)
		}
		v.ring, v.pgp = string(o.TrustedKeys), el
	}
	if len(o.AllowedSigners) > 0 {
		s, err := ParseAllowedSigners(o.AllowedSigners)
		if err != nil {
			return nil, err
		}
		v.signers = s
	}
	if v.mode != VerifyOff && len(v.pgp) == 0 && len(v.signers) == 0 {
		return nil, fmt.Errorf("gitrepo: verifier: mode %s needs trusted OpenPGP keys or SSH allowed signers", v.mode)
	}
	return v, nil
}

// Mode returns the verification mode.
func (v *Verifier) Mode() VerifyMode { return v.mode }

// VerifyCommit checks one commit's signature.
func (v *Verifier) VerifyCommit(c *object.Commit) (Signer, error) {
	hash := c.Hash.String()
	sig := strings.TrimSpace(c.PGPSignature)
	if sig == "" {
		return Signer{}, &SignatureError{Commit: hash, Kind: ErrUnsigned}
	}
	untrusted := func(format string, args ...any) (Signer, error) {
		return Signer{}, &SignatureError{Commit: hash, Kind: ErrUntrusted, Detail: fmt.Sprintf(format, args...)}
	}
	if strings.HasPrefix(sig, sshSigBegin) {
		if len(v.signers) == 0 {
			return untrusted("SSH signature, and no allowed signers are configured")
		}
		msg := &plumbing.MemoryObject{}
		if err := c.EncodeWithoutSignature(msg); err != nil {
			return Signer{}, fmt.Errorf("gitrepo: verify %s: encode: %w", short(hash), err)
		}
		payload, err := objectBytes(msg)
		if err != nil {
			return Signer{}, fmt.Errorf("gitrepo: verify %s: %w", short(hash), err)
		}
		s, err := verifySSH(v.signers, []byte(sig), payload, "git", c.Committer.When)
		if err != nil {
			return untrusted("%v", err)
		}
		return s, nil
	}
	if len(v.pgp) == 0 {
		return untrusted("OpenPGP signature, and no trusted OpenPGP keys are configured")
	}
	ent, err := c.Verify(v.ring)
	if err != nil {
		return untrusted("OpenPGP: %v", err)
	}
	s := Signer{Format: "openpgp", Key: strings.ToUpper(hex.EncodeToString(ent.PrimaryKey.Fingerprint))}
	for name := range ent.Identities {
		if s.Identity == "" || name < s.Identity {
			s.Identity = name
		}
	}
	return s, nil
}

func objectBytes(o plumbing.EncodedObject) ([]byte, error) {
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(r)
	return b.Bytes(), err
}

// maxStrictWalk bounds how many commits strict mode checks in one call.
const maxStrictWalk = 10000

// Verify checks the commits a pass would apply: tip alone (head mode), or
// every commit reachable from tip and not from since (strict mode; when
// since is empty, tip alone). It returns who signed tip, or a
// *SignatureError naming the first commit refused. Sync calls it, with
// strict mode's trust anchor as since, before it checks anything out.
func (s *Source) Verify(ctx context.Context, v *Verifier, since, tip string) (Signer, error) {
	if v == nil || v.mode == VerifyOff {
		return Signer{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.verifyLocked(ctx, v, since, tip)
}

func (s *Source) verifyLocked(ctx context.Context, v *Verifier, since, tip string) (Signer, error) {
	tc, err := s.repo.CommitObject(plumbing.NewHash(tip))
	if err != nil {
		return Signer{}, fmt.Errorf("gitrepo: verify %s: %w", short(tip), err)
	}
	signer, err := v.VerifyCommit(tc)
	if err != nil || v.mode != VerifyStrict || since == "" || since == tip {
		return signer, err
	}
	// Strict: everything reachable from since is already trusted.
	seen := map[plumbing.Hash]bool{}
	if base, err := s.repo.CommitObject(plumbing.NewHash(since)); err == nil {
		iter := object.NewCommitPreorderIter(base, nil, nil)
		_ = iter.ForEach(func(c *object.Commit) error {
			seen[c.Hash] = true
			if len(seen) >= maxStrictWalk {
				return errors.New("stop")
			}
			return nil
		})
	}
	queue := []*object.Commit{tc}
	seen[tc.Hash] = true
	checked := 0
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return Signer{}, err
		}
		c := queue[0]
		queue = queue[1:]
		if c.Hash != tc.Hash {
			if _, err := v.VerifyCommit(c); err != nil {
				return Signer{}, err
			}
		}
		if checked++; checked > maxStrictWalk {
			return Signer{}, fmt.Errorf("gitrepo: verify %s: more than %d commits since %s", short(tip), maxStrictWalk, short(since))
		}
		for _, p := range c.ParentHashes {
			if seen[p] {
				continue
			}
			seen[p] = true
			pc, err := s.repo.CommitObject(p)
			if err != nil {
				return Signer{}, fmt.Errorf("gitrepo: verify %s: parent %s: %w", short(c.Hash.String()), short(p.String()), err)
			}
			queue = append(queue, pc)
		}
	}
	return signer, nil
}

// AllowedSigner is one line of an allowed_signers file.
type AllowedSigner struct {
	Principals []string
	Key        ssh.PublicKey
	// Namespaces, when set, limits what the key may sign ("git").
	Namespaces []string
	// ValidAfter, ValidBefore bound the signature's time (zero: unbounded).
	ValidAfter, ValidBefore time.Time
	Line                    int
}

// ParseAllowedSigners reads the allowed_signers format of ssh-keygen(1):
// `principals [options] keytype base64-key [comment]`, options among
// namespaces="…", valid-after="…", valid-before="…". Lines with
// cert-authority are refused: certificates are not supported.
func ParseAllowedSigners(data []byte) ([]AllowedSigner, error) {
	var out []AllowedSigner
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fail := func(format string, args ...any) ([]AllowedSigner, error) {
			return nil, fmt.Errorf("gitrepo: allowed signers line %d: %s", i+1, fmt.Sprintf(format, args...))
		}
		var principals, rest string
		if strings.HasPrefix(line, `"`) {
			end := strings.IndexByte(line[1:], '"')
			if end < 0 {
				return fail("unterminated quoted principals")
			}
			principals, rest = line[1:end+1], line[end+2:]
		} else {
			f := strings.IndexAny(line, " \t")
			if f < 0 {
				return fail("no key")
			}
			principals, rest = line[:f], line[f:]
		}
		key, _, opts, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
		if err != nil {
			return fail("%v", err)
		}
		as := AllowedSigner{Principals: strings.Split(principals, ","), Key: key, Line: i + 1}
		for _, o := range opts {
			name, val, _ := strings.Cut(o, "=")
			val = strings.Trim(val, `"`)
			switch strings.ToLower(name) {
			case "namespaces":
				as.Namespaces = strings.Split(val, ",")
			case "valid-after", "valid-before":
				t, err := parseSSHTime(val)
				if err != nil {
					return fail("%s: %v", name, err)
				}
				if strings.EqualFold(name, "valid-after") {
					as.ValidAfter = t
				} else {
					as.ValidBefore = t
				}
			case "cert-authority":
				return fail("cert-authority is not supported")
			default:
				return fail("unknown option %q", name)
			}
		}
		out = append(out, as)
	}
	return out, nil
}

// parseSSHTime reads YYYYMMDD[HHMM[SS]][Z] (local time unless Z).
func parseSSHTime(s string) (time.Time, error) {
	loc := time.Local
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		s, loc = s[:len(s)-1], time.UTC
	}
	for _, layout := range []string{"20060102150405", "200601021504", "20060102"} {
		if len(s) == len(layout) {
			return time.ParseInLocation(layout, s, loc)
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q", s)
}

const (
	sshSigBegin = "-----BEGIN SSH SIGNATURE-----"
	sshSigEnd   = "-----END SSH SIGNATURE-----"
	sshSigMagic = "SSHSIG"
)

// sshSig is the blob of an armored SSH signature (PROTOCOL.sshsig).
type sshSig struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  string
	HashAlg   string
	Signature []byte
	Rest      []byte `ssh:"rest"`
}

// signedData is what the key actually signs.
type signedData struct {
	Namespace string
	Reserved  string
	HashAlg   string
	Hash      []byte
}

// verifySSH checks an armored SSH signature of payload made in namespace
// by a key of signers, valid at when.
func verifySSH(signers []AllowedSigner, armored, payload []byte, namespace string, when time.Time) (Signer, error) {
	sig, wrapped, err := parseSSHSig(armored)
	if err != nil {
		return Signer{}, err
	}
	if sig.Namespace != namespace {
		return Signer{}, fmt.Errorf("SSH signature for namespace %q, want %q", sig.Namespace, namespace)
	}
	pub, err := ssh.ParsePublicKey(sig.PublicKey)
	if err != nil {
		return Signer{}, fmt.Errorf("SSH signature: public key: %w", err)
	}
	var h crypto.Hash
	switch sig.HashAlg {
	case "sha256":
		h = crypto.SHA256
	case "sha512":
		h = crypto.SHA512
	default:
		return Signer{}, fmt.Errorf("SSH signature: hash %q not supported", sig.HashAlg)
	}
	hh := h.New()
	hh.Write(payload)
	data := append([]byte(sshSigMagic), ssh.Marshal(signedData{
		Namespace: sig.Namespace, Reserved: sig.Reserved, HashAlg: sig.HashAlg, Hash: hh.Sum(nil),
	})...)
	if err := pub.Verify(data, wrapped); err != nil {
		return Signer{}, fmt.Errorf("bad SSH signature by %s: %w", ssh.FingerprintSHA256(pub), err)
	}
	fp := ssh.FingerprintSHA256(pub)
	for _, as := range signers {
		if !bytes.Equal(as.Key.Marshal(), pub.Marshal()) {
			continue
		}
		if len(as.Namespaces) > 0 && !matchAny(as.Namespaces, namespace) {
			continue
		}
		if !as.ValidAfter.IsZero() && when.Before(as.ValidAfter) || !as.ValidBefore.IsZero() && !when.Before(as.ValidBefore) {
			continue
		}
		return Signer{Format: "ssh", Key: fp, Identity: strings.Join(as.Principals, ",")}, nil
	}
	return Signer{}, fmt.Errorf("unknown key %s", fp)
}

func matchAny(list []string, s string) bool {
	for _, x := range list {
		if x == s || x == "*" {
			return true
		}
	}
	return false
}

func parseSSHSig(armored []byte) (*sshSig, *ssh.Signature, error) {
	text := strings.TrimSpace(string(armored))
	if !strings.HasPrefix(text, sshSigBegin) || !strings.HasSuffix(text, sshSigEnd) {
		return nil, nil, errors.New("SSH signature: not armored")
	}
	body := strings.Join(strings.Fields(text[len(sshSigBegin):len(text)-len(sshSigEnd)]), "")
	raw, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, nil, fmt.Errorf("SSH signature: %w", err)
	}
	if !bytes.HasPrefix(raw, []byte(sshSigMagic)) {
		return nil, nil, errors.New("SSH signature: bad magic")
	}
	var sig sshSig
	if err := ssh.Unmarshal(raw[len(sshSigMagic):], &sig); err != nil {
		return nil, nil, fmt.Errorf("SSH signature: %w", err)
	}
	if sig.Version != 1 {
		return nil, nil, fmt.Errorf("SSH signature: version %d not supported", sig.Version)
	}
	var inner struct {
		Format string
		Blob   []byte
		Rest   []byte `ssh:"rest"`
	}
	if err := ssh.Unmarshal(sig.Signature, &inner); err != nil {
		return nil, nil, fmt.Errorf("SSH signature: signature blob: %w", err)
	}
	return &sig, &ssh.Signature{Format: inner.Format, Blob: inner.Blob, Rest: inner.Rest}, nil
}
