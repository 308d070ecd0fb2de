package units

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Marker starts the first line of every file gitgw owns. The line ends with
// the SHA-256 of the rest of the file as gitgw wrote it, so that a hand edit
// is told apart from a change of the site.
const Marker = "# Managed by gitgw; local edits are reverted. sha256="

// RenderUnit renders a template unit file, marker line included. The
// output depends only on t (maps are sorted), so it is golden-tested and
// its hash identifies the content.
func RenderUnit(t Template) []byte {
	var b section
	renderUnit(&b, t)
	return withMarker(b.Bytes())
}

// checkText renders t and reports the first line that would carry a
// control character (Config.Validate calls it before anything is written):
// systemd ends a line at CR as well as LF, so a description holding
// "\rExecStartPre=…" adds a directive that a reviewer of the site never
// sees, and other C0 controls have no business in a unit file. Checking
// what the renderer writes, line by line, covers every field there is.
func (t Template) checkText() error {
	var b section
	renderUnit(&b, t)
	return b.err
}

// checkText is Template.checkText for a drop-in.
func (d DropIn) checkText() error {
	var b section
	renderDropIn(&b, d)
	return b.err
}

func renderUnit(b *section, t Template) {
	b.header("Unit")
	b.kv("Description", t.Unit.Description)
	b.list("Documentation", t.Unit.Documentation)
	b.list("Wants", t.Unit.Wants)
	b.list("Requires", t.Unit.Requires)
	b.list("BindsTo", t.Unit.BindsTo)
	b.list("PartOf", t.Unit.PartOf)
	b.list("After", t.Unit.After)
	b.list("Before", t.Unit.Before)
	if t.Unit.StartLimitInterval > 0 {
		b.kv("StartLimitIntervalSec", duration(t.Unit.StartLimitInterval))
	}
	if t.Unit.StartLimitBurst > 0 {
		b.kv("StartLimitBurst", strconv.Itoa(t.Unit.StartLimitBurst))
	}
	b.extra(t.Extra, "Unit")

	s := t.Service
	b.header("Service")
	b.kv("Type", s.Type)
	b.kv("User", s.User)
	b.kv("Group", s.Group)
	b.kv("WorkingDirectory", s.WorkingDirectory)
	for _, k := range sortedKeys(s.Environment) {
		b.kv("Environment", quote(k+"="+s.Environment[k]))
	}
	for _, f := range s.EnvironmentFile {
		b.kv("EnvironmentFile", f)
	}
	for _, c := range s.ExecStartPre {
		b.kv("ExecStartPre", c)
	}
	b.kv("ExecStart", s.ExecStart)
	for _, c := range s.ExecStartPost {
		b.kv("ExecStartPost", c)
	}
	b.kv("ExecReload", s.ExecReload)
	b.kv("ExecStop", s.ExecStop)
	b.kv("Restart", s.Restart)
	if s.RestartDelay > 0 {
		b.kv("RestartSec", duration(s.RestartDelay))
	}
	if s.TimeoutStart > 0 {
		b.kv("TimeoutStartSec", duration(s.TimeoutStart))
	}
	if s.TimeoutStop > 0 {
		b.kv("TimeoutStopSec", duration(s.TimeoutStop))
	}
	limits := map[string]string{}
	for k, v := range s.Limits {
		limits["Limit"+strings.ToUpper(strings.TrimPrefix(k, "Limit"))] = v
	}
	for _, k := range sortedKeys(limits) {
		b.kv(k, limits[k])
	}
	b.kv("CPUQuota", s.CPUQuota)
	b.kv("MemoryMax", s.MemoryMax)
	b.kv("Slice", s.Slice)
	h := s.Hardening
	b.flag("NoNewPrivileges", h.NoNewPrivileges)
	b.flag("PrivateTmp", h.PrivateTmp)
	b.flag("PrivateDevices", h.PrivateDevices)
	b.kv("ProtectSystem", h.ProtectSystem)
	b.kv("ProtectHome", h.ProtectHome)
	b.flag("ProtectKernelTunables", h.ProtectKernelTunables)
	b.flag("ProtectKernelModules", h.ProtectKernelModules)
	b.flag("ProtectControlGroups", h.ProtectControlGroups)
	b.flag("RestrictSUIDSGID", h.RestrictSUIDSGID)
	b.flag("LockPersonality", h.LockPersonality)
	b.list("ReadWritePaths", h.ReadWritePaths)
	b.list("ReadOnlyPaths", h.ReadOnlyPaths)
	b.list("RestrictAddressFamilies", h.RestrictAddressFamilies)
	b.list("CapabilityBoundingSet", h.CapabilityBoundingSet)
	b.list("AmbientCapabilities", h.AmbientCapabilities)
	b.list("SystemCallFilter", h.SystemCallFilter)
	b.extra(t.Extra, "Service")

	if len(t.Install.WantedBy)+len(t.Install.RequiredBy) > 0 || hasSection(t.Extra, "Install") {
		b.header("Install")
		b.list("WantedBy", t.Install.WantedBy)
		b.list("RequiredBy", t.Install.RequiredBy)
		b.extra(t.Extra, "Install")
	}
	for _, name := range otherSections(t.Extra) {
		b.header(name)
		b.extra(t.Extra, name)
	}
}

// RenderDropIn renders a drop-in file, marker line included.
func RenderDropIn(d DropIn) []byte {
	var b section
	renderDropIn(&b, d)
	return withMarker(b.Bytes())
}

func renderDropIn(b *section, d DropIn) {
	for _, name := range sectionOrder(d.Directives) {
		b.header(name)
		b.extra(d.Directives, name)
	}
}

func withMarker(body []byte) []byte {
	sum := sha256.Sum256(body)
	out := make([]byte, 0, len(Marker)+64+1+len(body))
	out = append(out, Marker...)
	out = append(out, hex.EncodeToString(sum[:])...)
	out = append(out, '\n')
	return append(out, body...)
}

// Ownership is what the first line of a unit file says about it.
type Ownership struct {
	// Owned: the file starts with Marker.
	Owned bool
	// Written is the hash gitgw recorded when it wrote the file.
	Written string
	// Edited: the body no longer matches the recorded hash (changed by hand).
	Edited bool
}

// ParseOwnership reads the marker line of a file's content.
func ParseOwnership(content []byte) Ownership {
	line, body, _ := bytes.Cut(content, []byte("\n"))
	rest, ok := bytes.CutPrefix(line, []byte(Marker))
	if !ok {
		return Ownership{}
	}
	sum := sha256.Sum256(body)
	o := Ownership{Owned: true, Written: string(rest)}
	o.Edited = o.Written != hex.EncodeToString(sum[:])
	return o
}

// contentHash is the hash recorded in a rendered file's marker.
func contentHash(rendered []byte) string {
	return ParseOwnership(rendered).Written
}

// section writes an INI-style unit file; a section header is written only
// once the section has a first line, so empty sections do not appear. err
// is the first section name, key or value that holds a control character.
type section struct {
	bytes.Buffer
	pending string
	err     error
}

func (b *section) header(name string) { b.pending = name }

func (b *section) kv(k, v string) {
	if v != "" {
		b.line(k, v)
	}
}

// line writes k=v even when v is empty (a raw "ExecStart=" resets a list).
func (b *section) line(k, v string) {
	if b.err == nil {
		for _, s := range []string{b.pending, k, v} {
			if i := controlChar(s); i >= 0 {
				b.err = fmt.Errorf("%s=%q: control character %q at byte %d: systemd would read it as a line break or garbage", k, v, s[i], i)
				break
			}
		}
	}
	if b.pending != "" {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(b, "[%s]\n", b.pending)
		b.pending = ""
	}
	fmt.Fprintf(b, "%s=%s\n", k, v)
}

func (b *section) list(k string, vs []string) {
	if len(vs) > 0 {
		b.kv(k, strings.Join(vs, " "))
	}
}

func (b *section) flag(k string, v bool) {
	if v {
		b.kv(k, "yes")
	}
}

func (b *section) extra(ds []Directive, name string) {
	for _, d := range ds {
		if d.Section == name {
			b.line(d.Key, d.Value)
		}
	}
}

func hasSection(ds []Directive, name string) bool {
	for _, d := range ds {
		if d.Section == name {
			return true
		}
	}
	return false
}

// otherSections are the sections of raw directives beyond Unit, Service and
// Install, in order of first appearance.
func otherSections(ds []Directive) []string {
	var out []string
	for _, n := range sectionOrder(ds) {
		switch n {
		case "Unit", "Service", "Install":
		default:
			out = append(out, n)
		}
	}
	return out
}

func sectionOrder(ds []Directive) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range ds {
		if !seen[d.Section] {
			seen[d.Section] = true
			out = append(out, d.Section)
		}
	}
	return out
}

// controlChar returns the index of the first ASCII control character in s
// other than tab (C0 and DEL), or -1.
func controlChar(s string) int {
	return strings.IndexFunc(s, func(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f })
}

// quote quotes a value for Environment= when it needs it.
func quote(s string) string {
	if !strings.ContainsAny(s, " \t\"\\'") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// duration renders a time span the way systemd reads it.
func duration(d time.Duration) string {
	switch {
	case d%time.Minute == 0 && d >= time.Minute:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "min"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	default:
		return strconv.FormatInt(int64(d/time.Microsecond), 10) + "us"
	}
}
