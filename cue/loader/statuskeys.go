package loader

import "cuelang.org/go/cue"

// statusKeys collects every node's status_key, by node (nil when no node
// lists one): a node checks the status branches of the peers it waits for
// against them. One lookup per node, over the evaluated data.
func statusKeys(v cue.Value, nodes []string) map[string]string {
	var out map[string]string
	for _, node := range nodes {
		k := v.LookupPath(cue.MakePath(cue.Str("nodes"), cue.Str(node), cue.Str("status_key")))
		if !k.Exists() {
			continue
		}
		s, err := k.String()
		if err != nil {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[node] = s
	}
	return out
}
