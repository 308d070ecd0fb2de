package gitrepo_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/gitgw/gitgw/reconcile/gitrepo"
)

// An agent's pull loop: Sync on every push seen by Watch (local
// repositories) and on a poll (any repository). A commit refused by the
// verifier or for its tree is never checked out.
func ExampleSource() {
	ctx := context.Background()
	src, err := gitrepo.Open(ctx, gitrepo.Options{
		URL: "ssh://git@git.example.com/site.git", Ref: "main",
		Dir:        "/var/lib/gitgw/source",
		SSHKeyFile: "/etc/gitgw/id_ed25519", KnownHostsFile: "/etc/gitgw/known_hosts",
	})
	if err != nil {
		log.Fatal(err)
	}
	var pushed <-chan struct{}
	if src.CanWatch() {
		pushed, _ = src.Watch(ctx)
	}
	poll := time.NewTicker(time.Minute)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pushed:
		case <-poll.C:
		}
		rev, err := src.Sync(ctx)
		if errors.Is(err, gitrepo.ErrRewrite) || errors.Is(err, gitrepo.ErrRefused) {
			log.Printf("keeping the last good state: %v", err)
			continue
		}
		if err != nil {
			log.Printf("pull: %v", err)
			continue
		}
		log.Printf("load the site from %s (%s: %s)", rev.Dir, rev.Short(), rev.Subject)
	}
}

// A node's status branch: Write after every pass, Run pushes.
func ExampleStatusWriter() {
	ctx := context.Background()
	w, err := gitrepo.NewStatusWriter(ctx, gitrepo.StatusOptions{
		Node: "gw1", URL: "/srv/git/site.git", Dir: "/var/lib/gitgw/status.git",
		Coalesce: 5 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = w.Run(ctx) }()
	defer w.Close()

	_, err = w.Write(ctx, map[string][]byte{
		"status.json": []byte(`{"node":"gw1"}` + "\n"),
		"STATUS.md":   []byte("# gw1\n"),
	}, gitrepo.Message{Subject: "apply(gw1): 3a9c1e2, 4 changes", Desired: "3a9c1e2", Applied: "3a9c1e2", Drift: "none"})
	if errors.Is(err, gitrepo.ErrDiverged) {
		log.Printf("another node reports as gw1: %v", err)
	}
}
