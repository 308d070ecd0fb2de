// Package policies vets a desired state before anything is applied: a bad
// commit must never take a gateway down, and the cheapest place to stop it
// is before the first driver runs.
//
// It holds two kinds of rules, both pure functions over cue/spec values so
// that they are table-tested without a site on disk:
//
//   - Guardrails (Check): built-in rules on one desired state, on by
//     default, each turned off by name in the site
//     (site: policies: disable: ["vrid-unique"]). They run on one node's view
//     in the agent and on the whole site in `gitgw validate`.
//   - Change policies (CheckChange): rules on the step from the last applied
//     state to the new one: how much of a service one commit may remove,
//     emptying a node of VIPs or servers only with a Gitgw-Allow-Empty
//     trailer, and maintenance windows per node label.
//
// A finding is a Violation naming its policy and the site field it is
// about; the caller (cue/loader) turns the field path into file:line:col.
// Site policies — organisation rules written in CUE under policies/ in the
// site repository — are evaluated by cue/loader, the only CUE importer.
package policies
