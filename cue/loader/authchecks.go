package loader

import (
	"maps"
	"slices"
	"strconv"

	"github.com/gitgw/gitgw/cue/spec"
)

// checkUserlists checks the references of HTTP basic authentication: a
// rule's auth condition names a list of site.userlists and groups of that
// list, a user's groups are the list's. A misspelt list or group would
// otherwise refuse every request, or let none of a group in.
func checkUserlists(n *spec.Node) Errors {
	var errs Errors
	add := func(path, msg string) { errs = append(errs, Error{Path: path, Msg: msg}) }
	lists := n.Site.Userlists
	for _, ln := range slices.Sorted(maps.Keys(lists)) {
		ul := lists[ln]
		for _, un := range slices.Sorted(maps.Keys(ul.Users)) {
			for i, g := range ul.Users[un].Groups {
				if !slices.Contains(ul.Groups, g) {
					add("site.userlists."+spec.Label(ln)+".users."+spec.Label(un)+".groups."+strconv.Itoa(i),
						"user "+strconv.Quote(un)+": group "+strconv.Quote(g)+" is not in the groups of userlist "+strconv.Quote(ln))
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(n.Services)) {
		h := n.Services[name].HTTP
		if h == nil {
			continue
		}
		for i, r := range h.Rules {
			for j, c := range r.When {
				if c.Subject != "auth" {
					continue
				}
				base := "services." + spec.Label(name) + ".http.rules." + strconv.Itoa(i) + ".when." + strconv.Itoa(j)
				ul, ok := lists[c.Userlist]
				if !ok {
					add(base+".userlist", "userlist "+strconv.Quote(c.Userlist)+" is not defined in site.userlists")
					continue
				}
				for k, g := range c.Values {
					if !slices.Contains(ul.Groups, g) {
						add(base+".values."+strconv.Itoa(k), "group "+strconv.Quote(g)+" is not in the groups of userlist "+strconv.Quote(c.Userlist))
					}
				}
			}
		}
	}
	return errs
}
