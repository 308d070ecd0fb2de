// Package schema embeds the CUE schema of a gitgw site (site.cue), so that
// the binary carries the one source of truth for what a site may say. The
// loader mounts these files into every site it evaluates as the importable
// package ImportPath.
package schema

import "embed"

// ImportPath is the CUE import path under which the schema is mounted; a
// site may also import it itself (for editors and `cue vet`).
const ImportPath = "gitgw.dev/schema"

// Files holds the schema's *.cue files.
//
//go:embed *.cue
var Files embed.FS
