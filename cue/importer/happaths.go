package importer

import (
	"path"
	"strings"
)

// hapPaths resolves the file names of an haproxy.cfg as HAProxy opens
// them, so that a relative crt or ca-file becomes the absolute path the
// site must name (the agent does not run in HAProxy's directory).
//
// HAProxy joins a relative crt to crt-base and a relative ca-file or
// crl-file to ca-base; what is still relative is opened from its
// current directory, which the global default-path sets while the file
// is read (2.4+): "current" (the directory HAProxy was started in, which
// the file does not say), "config" (the file's own directory), "parent"
// (its parent) or "origin DIR". Settings apply to the lines after them,
// as HAProxy reads them in order.
type hapPaths struct {
	// dir is the absolute directory the file is read from on the
	// gateway (Input.Dir), "" when unknown.
	dir             string
	crtBase, caBase string
	mode, origin    string // default-path; "" is "current"
}

// global reads a global line that sets how paths resolve, reporting
// whether it was one.
func (hp *hapPaths) global(l hapLine, w *warnings) bool {
	ws := l.Words
	switch {
	case ws[0] == "crt-base" && len(ws) == 2:
		hp.crtBase = ws[1]
	case ws[0] == "ca-base" && len(ws) == 2:
		hp.caBase = ws[1]
	case ws[0] == "default-path" && len(ws) == 2 && (ws[1] == "current" || ws[1] == "config" || ws[1] == "parent"):
		hp.mode, hp.origin = ws[1], ""
	case ws[0] == "default-path" && len(ws) == 3 && ws[1] == "origin":
		hp.mode, hp.origin = "origin", ws[2]
	default:
		return false
	}
	w.add(l.Pos, "%s: read to resolve the relative file names after it; the site names each file by its absolute path", strings.Join(ws, " "))
	return true
}

// resolve returns the absolute path HAProxy opens for name, a "crt" or
// "ca" file, and false when that depends on where HAProxy was started.
func (hp *hapPaths) resolve(kind, name string) (string, bool) {
	if hp == nil {
		return name, path.IsAbs(name)
	}
	if path.IsAbs(name) {
		return name, true
	}
	base := hp.caBase
	if kind == "crt" {
		base = hp.crtBase
	}
	if base != "" {
		name = path.Join(base, name)
		if path.IsAbs(name) {
			return name, true
		}
	}
	var cwd string
	switch hp.mode {
	case "config":
		cwd = hp.dir
	case "parent":
		if hp.dir != "" {
			cwd = path.Dir(hp.dir)
		}
	case "origin":
		if path.IsAbs(hp.origin) {
			cwd = hp.origin
		}
	}
	if cwd == "" {
		return "", false
	}
	return path.Join(cwd, name), true
}

// relativeWhy says why a relative path cannot be resolved, for a need.
func (hp *hapPaths) relativeWhy() string {
	if hp != nil && (hp.mode == "config" || hp.mode == "parent") {
		return "a relative path, and the file's directory on the gateway is unknown: import it by its absolute path"
	}
	return "a relative path: HAProxy opens it from the directory it was started in, which the file does not say (crt-base, ca-base or default-path would)"
}

// joinedBy says how a relative name was resolved, for the warning.
func joinedBy(name, resolved string) string {
	if strings.HasPrefix(name, "/") {
		return ""
	}
	return name + " resolved as HAProxy opens it: " + resolved
}
