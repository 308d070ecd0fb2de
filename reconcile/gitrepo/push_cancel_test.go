package gitrepo

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/gitgw/gitgw/test/gitremote"
)

// TestPushLocalCancelledMidPack: a push to a local repository whose
// context ends while the pack streams returns (see pushRef: a kill of
// git-receive-pack mid-pack could leave go-git waiting for ever on a
// stderr its child still held; seen once in CI, in a status writer's
// cleanup). The hang itself did not reproduce here in a handful of
// runs: this guards the path, it does not replay that run.
func TestPushLocalCancelledMidPack(t *testing.T) {
	gitremote.RequireGit(t)
	r := gitremote.NewBare(t)
	s := memory.NewStorage()
	// 15 MiB that do not compress: the pack takes a while to stream.
	var entries []object.TreeEntry
	for i := 0; i < 3; i++ {
		data := make([]byte, 5<<20)
		_, _ = rand.Read(data)
		o := s.NewEncodedObject()
		o.SetType(plumbing.BlobObject)
		w, _ := o.Writer()
		_, _ = w.Write(data)
		_ = w.Close()
		h, err := s.SetEncodedObject(o)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, object.TreeEntry{Name: string(rune('a' + i)), Mode: filemode.Regular, Hash: h})
	}
	tree := &object.Tree{Entries: entries}
	to := s.NewEncodedObject()
	if err := tree.Encode(to); err != nil {
		t.Fatal(err)
	}
	th, _ := s.SetEncodedObject(to)
	sig := object.Signature{Name: "t", Email: "t@example.com", When: time.Now()}
	c := &object.Commit{Author: sig, Committer: sig, Message: "big\n", TreeHash: th}
	co := s.NewEncodedObject()
	if err := c.Encode(co); err != nil {
		t.Fatal(err)
	}
	head, _ := s.SetEncodedObject(co)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := pushRef(ctx, s, r.Dir, remoteAccess{}, pushSpec{ref: "refs/heads/big", head: head})
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // the pack is streaming
	cancel()
	select {
	case err := <-done:
		t.Logf("push returned: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("a push to a local repository cancelled mid-pack never returned")
	}
}
