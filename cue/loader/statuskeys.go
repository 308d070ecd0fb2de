package loader

import "cuelang.org/go/cue"

// statusKeys collects every node's status_key, by node (nil when no node
// lists one): a node checks the status branches of the peers it waits for
// against them. One pass over the nodes of the evaluated data.
func statusKeys(v cue.Value) map[string]string {
	var out map[string]string
	key := cue.MakePath(cue.Str("status_key"))
	eachField(v.LookupPath(cue.ParsePath("nodes")), func(node string, nv cue.Value) {
		k := nv.LookupPath(key)
		if !k.Exists() {
			return
		}
		s, err := k.String()
		if err != nil {
			return
		}
		if out == nil {
			out = map[string]string{}
		}
		out[node] = s
	})
	return out
}
