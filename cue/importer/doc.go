// Package importer turns the configurations a gateway runs today — a
// keepalived.conf per node and an haproxy.cfg — into a gitgw site: a CUE
// module an operator can commit and hand to the agent. It is the migration
// path of `gitgw import`.
//
// Parsing keeps the file and line of every directive, so that whatever has
// no equivalent in the site schema (or changes behaviour on the way) is
// reported as a Warning the operator can find in the source. The site is
// written as plain CUE text in `cue fmt` style: only cue/loader may import
// the CUE libraries, and the command validates the result with it.
//
// The mapping aims at "a plan that does what they did": where keepalived's or
// HAProxy's defaults differ from the schema's (keepalived speaks VRRPv2 and
// sends a second round of gratuitous ARPs after 5 s, HAProxy does not
// redispatch by default), the value is written out explicitly.
package importer
