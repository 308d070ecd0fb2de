// Package drift turns what a reconcile pass found and did into the reports
// gitgw writes back to Git: the node's versioned status.json, a short
// STATUS.md for people, the commit message that says what happened
// (apply, drift, error, failover …, with Gitgw-* trailers), adopt proposals
// that edit the site's CUE to match drift left in place, the fleet view
// read from every node's status branch, and a plan against a node's last
// reported state.
//
// It is pure: no Git, no clock, no I/O. Everything rendered is
// deterministic so that a status commit is made only when something
// changed, and so that golden files can pin the formats. The reconcile
// package feeds it (Reporter) and writes through reconcile/gitrepo.
package drift
