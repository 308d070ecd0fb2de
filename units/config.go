// Package units runs backend services as instances of systemd template
// units (app@8080.service …) declared by the site: it renders the template
// files, writes them atomically with an ownership marker, enables and starts
// the instances, restarts them one at a time when their template changes,
// and sees (through a D-Bus subscription) an instance stopped, masked or
// failed by hand.
//
// It is the only importer of github.com/coreos/go-systemd. The manager
// talks to systemd through Conn, a small interface declared here, so that
// its logic is tested with a recording fake, and the same code is tested
// against a real systemd in namespaces (test/systemd).
//
// gitgw never touches a unit file it did not write: every file it owns
// starts with the marker line (see Marker), and instances are managed only
// when they are instances of such a template.
package units

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultUnitDir is where template files go unless Config.UnitDir says
// otherwise.
const DefaultUnitDir = "/etc/systemd/system"

// DriftMode says what happens when the node moved away from the site by
// hand: an instance stopped or failed, a unit file edited.
type DriftMode string

// The drift modes.
const (
	// DriftCorrect puts the node back (the default).
	DriftCorrect DriftMode = "correct"
	// DriftReport only reports; Set applies changes of the site but leaves
	// hand-made changes in place.
	DriftReport DriftMode = "report"
)

// Config is the desired state of the units on one node.
type Config struct {
	// UnitDir is the directory template files are written to; default
	// /etc/systemd/system. It must be on systemd's unit path.
	UnitDir string
	// Drift is the drift mode; empty means DriftCorrect.
	Drift DriftMode
	// Templates are the template units and their instances.
	Templates []Template
	// DropIns are optional drop-ins for units gitgw does not own
	// (<UnitDir>/<Unit>.d/<Name>.conf). Written and removed like templates;
	// the unit is not restarted.
	DropIns []DropIn
}

// Template is one template unit, NAME@.service, and the instances of it
// that run on this node.
type Template struct {
	// Name is the part before "@": "app" gives app@.service.
	Name    string
	Unit    UnitSection
	Service ServiceSection
	Install InstallSection
	// Extra are raw directives appended to their section, in order.
	Extra []Directive
	// Instances are the instance strings, in roll order ("8080", "8081").
	Instances []string
	// Drift overrides Config.Drift for this template.
	Drift DriftMode
	// RollTimeout overrides Options.RollTimeout for this template's
	// instances.
	RollTimeout time.Duration
}

func (t Template) drift(c Config) DriftMode {
	if t.Drift != "" {
		return t.Drift
	}
	return c.drift()
}

// UnitSection is the [Unit] section.
type UnitSection struct {
	Description   string
	Documentation []string
	Wants         []string
	Requires      []string
	BindsTo       []string
	PartOf        []string
	After         []string
	Before        []string
	// StartLimitIntervalSec and StartLimitBurst: zero leaves systemd's
	// defaults (5 starts per 10 s).
	StartLimitInterval time.Duration
	StartLimitBurst    int
}

// ServiceSection is the [Service] section. Zero values are not rendered.
type ServiceSection struct {
	Type             string // simple, exec, notify, forking, oneshot
	ExecStartPre     []string
	ExecStart        string // usually carries %i
	ExecStartPost    []string
	ExecReload       string
	ExecStop         string
	User             string
	Group            string
	WorkingDirectory string
	// Environment is rendered sorted by name, one Environment= per entry.
	Environment     map[string]string
	EnvironmentFile []string
	Restart         string        // no, on-failure, always, …
	RestartDelay    time.Duration // RestartSec=
	TimeoutStart    time.Duration // TimeoutStartSec=
	TimeoutStop     time.Duration // TimeoutStopSec=
	// Limits are the Limit* directives by name without the prefix:
	// {"NOFILE": "65535", "NPROC": "4096"}; rendered sorted.
	Limits    map[string]string
	CPUQuota  string // "150%"
	MemoryMax string // "2G"
	Slice     string
	Hardening Hardening
}

// Hardening are the sandboxing options of [Service]; only set ones are
// rendered.
type Hardening struct {
	NoNewPrivileges         bool
	PrivateTmp              bool
	PrivateDevices          bool
	ProtectSystem           string // "strict", "full", "true"
	ProtectHome             string // "true", "read-only", "tmpfs"
	ProtectKernelTunables   bool
	ProtectKernelModules    bool
	ProtectControlGroups    bool
	RestrictSUIDSGID        bool
	LockPersonality         bool
	ReadWritePaths          []string
	ReadOnlyPaths           []string
	RestrictAddressFamilies []string
	CapabilityBoundingSet   []string
	AmbientCapabilities     []string
	SystemCallFilter        []string
}

// InstallSection is the [Install] section. An instance can be enabled only
// when the template has one (WantedBy=multi-user.target is the usual).
type InstallSection struct {
	WantedBy   []string
	RequiredBy []string
}

// Directive is one raw "Key=Value" line of a section ("Unit", "Service",
// "Install", or any other section name).
type Directive struct {
	Section string
	Key     string
	Value   string
}

// DropIn is a drop-in file for a unit gitgw does not own.
type DropIn struct {
	Unit       string // "haproxy.service"
	Name       string // "50-gitgw" gives 50-gitgw.conf
	Directives []Directive
}

// FileName is the template's unit file name, "NAME@.service".
func (t Template) FileName() string { return t.Name + "@.service" }

// UnitName is the unit name of one instance, "NAME@INSTANCE.service".
func (t Template) UnitName(instance string) string { return t.Name + "@" + instance + ".service" }

// UnitNames are the unit names of every instance, in roll order.
func (t Template) UnitNames() []string {
	out := make([]string, 0, len(t.Instances))
	for _, i := range t.Instances {
		out = append(out, t.UnitName(i))
	}
	return out
}

// FileName is the drop-in's path relative to the unit directory.
func (d DropIn) FileName() string { return d.Unit + ".d/" + d.Name + ".conf" }

// Ports returns the instance strings of a port range, from and to included.
func Ports(from, to int) []string {
	var out []string
	for p := from; p <= to; p++ {
		out = append(out, strconv.Itoa(p))
	}
	return out
}

func (c Config) unitDir() string {
	if c.UnitDir == "" {
		return DefaultUnitDir
	}
	return c.UnitDir
}

func (c Config) drift() DriftMode {
	if c.Drift == "" {
		return DriftCorrect
	}
	return c.Drift
}

// Validate checks names and instances: systemd's unit name rules, no
// duplicates, a template with instances needs an ExecStart.
func (c Config) Validate() error {
	var errs []error
	switch c.drift() {
	case DriftCorrect, DriftReport:
	default:
		errs = append(errs, fmt.Errorf("units: drift mode %q: want correct or report", c.Drift))
	}
	seen := map[string]bool{}
	for _, t := range c.Templates {
		if !validName(t.Name, false) {
			errs = append(errs, fmt.Errorf("units: template name %q: want letters, digits and :-_. (no @)", t.Name))
			continue
		}
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("units: template %q declared twice", t.Name))
		}
		seen[t.Name] = true
		switch t.drift(c) {
		case DriftCorrect, DriftReport:
		default:
			errs = append(errs, fmt.Errorf("units: template %q: drift mode %q: want correct or report", t.Name, t.Drift))
		}
		if t.Service.ExecStart == "" {
			errs = append(errs, fmt.Errorf("units: template %q: ExecStart is empty", t.Name))
		}
		inst := map[string]bool{}
		for _, i := range t.Instances {
			if !validName(i, true) {
				errs = append(errs, fmt.Errorf("units: %s: instance %q: want letters, digits and :-_.\\", t.FileName(), i))
			}
			if inst[i] {
				errs = append(errs, fmt.Errorf("units: %s: instance %q listed twice", t.FileName(), i))
			}
			inst[i] = true
		}
		for _, d := range t.Extra {
			if err := validDirective(d); err != nil {
				errs = append(errs, fmt.Errorf("units: %s: %w", t.FileName(), err))
			}
		}
		if err := t.checkText(); err != nil {
			errs = append(errs, fmt.Errorf("units: %s: %w", t.FileName(), err))
		}
	}
	for _, d := range c.DropIns {
		if !validName(strings.TrimSuffix(d.Unit, ".service"), true) || !strings.Contains(d.Unit, ".") || !validName(d.Name, false) {
			errs = append(errs, fmt.Errorf("units: drop-in %q for %q: bad unit or name", d.Name, d.Unit))
		}
		for _, x := range d.Directives {
			if err := validDirective(x); err != nil {
				errs = append(errs, fmt.Errorf("units: drop-in %s: %w", d.FileName(), err))
			}
		}
		if err := d.checkText(); err != nil {
			errs = append(errs, fmt.Errorf("units: drop-in %s: %w", d.FileName(), err))
		}
	}
	return errors.Join(errs...)
}

func validDirective(d Directive) error {
	if d.Section == "" || d.Key == "" || strings.ContainsAny(d.Section+d.Key, "=\n[]") || strings.Contains(d.Value, "\n") {
		return fmt.Errorf("directive [%s] %s=%q: bad section, key or value", d.Section, d.Key, d.Value)
	}
	return nil
}

func validName(s string, instance bool) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == ':', r == '-', r == '_', r == '.':
		case instance && (r == '\\' || r == '@'):
		default:
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
