package reconcile

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gitgw/gitgw/cue/spec"
	"github.com/gitgw/gitgw/reconcile/gitrepo"
	"github.com/gitgw/gitgw/test/gitremote"
)

// TestStatusKeyProblem: the agent says when its peers would not trust its
// status branch: the site's status_key for it and its signing key differ.
func TestStatusKeyProblem(t *testing.T) {
	keys := t.TempDir()
	key, pub := gitremote.SSHSigningKey(t, keys, "gw1")
	_, other := gitremote.SSHSigningKey(t, keys, "other")
	writer := func(signing string) *gitrepo.StatusWriter {
		w, err := gitrepo.NewStatusWriter(context.Background(), gitrepo.StatusOptions{Node: "gw1", URL: t.TempDir(),
			Dir: filepath.Join(t.TempDir(), "status.git"), SigningKeyFile: signing})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close() })
		return w
	}
	signed, unsigned := writer(key), writer("")
	view := func(keys map[string]string) *spec.Node { return &spec.Node{Name: "gw1", StatusKeys: keys} }
	for _, tc := range []struct {
		name string
		keys map[string]string
		w    *gitrepo.StatusWriter
		want string
	}{
		{"no keys in the site", nil, unsigned, ""},
		{"the node's own key", map[string]string{"gw1": pub}, signed, ""},
		{"another key", map[string]string{"gw1": other}, signed, "the site's status_key for this node is not the public half of --status-signing-key"},
		{"not signing", map[string]string{"gw1": pub}, unsigned, "the site lists a status_key for this node, and --status-signing-key is not set"},
		{"no key for this node", map[string]string{"gw2": other}, signed, "the site lists status keys, but no status_key for this node"},
	} {
		if got := StatusKeyProblem(view(tc.keys), tc.w); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
