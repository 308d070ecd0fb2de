// Package gitrepo is gitgw's only door to Git (the only importer of go-git).
//
// It does three things, each small enough to test against real remotes:
//
//   - Source pulls the site repository: it asks the remote where the tracked
//     branch points (ls-remote style) and fetches only when that moved,
//     refuses a history rewrite of the tracked branch unless told otherwise,
//     decides the commit's signatures on the object store (the commit, or in
//     strict mode every commit since the trust anchor) before anything of
//     it is written, and exports the commit's tree into a directory of its
//     own, one per commit, so a loader never sees a half-written tree. The
//     tree is checked as a whole before one file is written (plain names
//     only, no symbolic links, bounded entries and bytes) and written
//     through an os.Root, so nothing lands above its directory. Local
//     repositories are also watched with fsnotify, so a push is seen at once.
//   - StatusWriter keeps the node's status branch (gitgw/status/NODE): a
//     commit only when the content changed, committed locally first and
//     pushed in the background with backoff, so nothing is lost while the
//     remote is down; its own branch only, never forced.
//   - ReadStatusBranches reads every node's status branch at once, for the
//     fleet view.
//
// Pushes send only the objects of the commits the remote lacks, found by
// walking back from the new head to the remote's tip, so their cost does
// not grow with the history or with the number of nodes' branches (go-git's
// own push walks everything the remote advertises). The local repositories
// are repacked now and then, so a long-running agent does not pile up loose
// objects.
//
// Transports are the ones go-git speaks: a local path or file:// (through
// git-upload-pack/git-receive-pack), ssh:// with a key file and a checked
// known_hosts file, and https:// with a token read from a file.
package gitrepo
