package gitrepo

// Signed status commits. A master applies a commit once its backup's
// status branch shows it applied and healthy; whoever can push to the
// repository could forge that branch and release the master early. Each
// node therefore signs its status commits with its own SSH key, as `git
// commit -S` with gpg.format=ssh does (PROTOCOL.sshsig, namespace "git",
// so `git verify-commit` checks them too), and a peer checks the head of
// a status branch against the key the site lists for its node.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"
)

// commitSigner signs commits with an SSH key.
type commitSigner struct {
	key ssh.Signer
}

// loadSigningKey reads an unencrypted OpenSSH private key (ssh-keygen -N
// ""): the agent signs unattended.
func loadSigningKey(file string) (*commitSigner, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: status signing key: %w", err)
	}
	key, err := ssh.ParsePrivateKey(b)
	var pass *ssh.PassphraseMissingError
	if errors.As(err, &pass) {
		return nil, fmt.Errorf("gitrepo: status signing key %s: protected by a passphrase; the agent signs unattended: give it an unencrypted key", file)
	}
	if err != nil {
		return nil, fmt.Errorf("gitrepo: status signing key %s: %w", file, err)
	}
	return &commitSigner{key: key}, nil
}

// PublicKey is the key in authorized_keys format, as a site lists it.
func (s *commitSigner) PublicKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.key.PublicKey())))
}

// sign returns the armored SSH signature of payload in namespace.
func (s *commitSigner) sign(payload []byte, namespace string) ([]byte, error) {
	const hashAlg = "sha512"
	h := sha512.Sum512(payload)
	data := append([]byte(sshSigMagic), ssh.Marshal(signedData{Namespace: namespace, HashAlg: hashAlg, Hash: h[:]})...)
	var sig *ssh.Signature
	var err error
	if as, ok := s.key.(ssh.AlgorithmSigner); ok && s.key.PublicKey().Type() == ssh.KeyAlgoRSA {
		// PROTOCOL.sshsig refuses SHA-1 RSA signatures.
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = s.key.Sign(rand.Reader, data)
	}
	if err != nil {
		return nil, err
	}
	blob := append([]byte(sshSigMagic), ssh.Marshal(sshSig{
		Version:   1,
		PublicKey: s.key.PublicKey().Marshal(),
		Namespace: namespace,
		HashAlg:   hashAlg,
		Signature: ssh.Marshal(sig),
	})...)
	enc := base64.StdEncoding.EncodeToString(blob)
	var b bytes.Buffer
	b.WriteString(sshSigBegin + "\n")
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n" + sshSigEnd + "\n")
	return b.Bytes(), nil
}

// signCommit signs c (whose other fields are final) in place.
func (s *commitSigner) signCommit(c *object.Commit) error {
	c.PGPSignature = ""
	msg := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(msg); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	payload, err := objectBytes(msg)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	sig, err := s.sign(payload, "git")
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	c.PGPSignature = string(sig)
	return nil
}

// VerifySignedBy checks that the branch's head commit is signed by key, an
// SSH public key in authorized_keys format (a site's status_key). It
// returns a *SignatureError (ErrUnsigned or ErrUntrusted) otherwise.
func (b BranchStatus) VerifySignedBy(key string) (Signer, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil {
		return Signer{}, fmt.Errorf("gitrepo: status key of %s: %w", b.Node, err)
	}
	sig := strings.TrimSpace(b.signature)
	if sig == "" {
		return Signer{}, &SignatureError{Commit: b.Commit, Kind: ErrUnsigned}
	}
	if !strings.HasPrefix(sig, sshSigBegin) {
		return Signer{}, &SignatureError{Commit: b.Commit, Kind: ErrUntrusted, Detail: "not an SSH signature"}
	}
	s, err := verifySSH([]AllowedSigner{{Principals: []string{b.Node}, Key: pub}}, []byte(sig), b.payload, "git", b.Time)
	if err != nil {
		return Signer{}, &SignatureError{Commit: b.Commit, Kind: ErrUntrusted, Detail: err.Error()}
	}
	return s, nil
}

// SignsAs says whether the writer signs its commits with key, an SSH public
// key in authorized_keys format; false when it does not sign.
func (w *StatusWriter) SignsAs(key string) bool {
	if w.signer == nil {
		return false
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key))
	return err == nil && bytes.Equal(pub.Marshal(), w.signer.key.PublicKey().Marshal())
}

// Signs says whether the writer signs its commits.
func (w *StatusWriter) Signs() bool { return w.signer != nil }
