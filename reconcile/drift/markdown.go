package drift

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gitgw/gitgw/internal/words"
)

// Markdown renders STATUS.md: a few lines for people browsing the status
// branch. Like status.json it holds no timestamps.
func Markdown(st Status) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: %s\n\n", st.Node, headline(st))
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	desired := Short(st.Desired.Commit)
	if st.Desired.Subject != "" {
		desired += " " + mdEscape(st.Desired.Subject)
	}
	fmt.Fprintf(&b, "| desired | %s |\n", desired)
	fmt.Fprintf(&b, "| applied | %s |\n", orNone(Short(st.Applied)))
	fmt.Fprintf(&b, "| last pass | %s |\n", st.LastPass.Outcome)
	var counts []string
	for _, s := range []string{InSync, Differs, Open, Ignored, Pending} {
		if n := st.Counts[s]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, s))
		}
	}
	fmt.Fprintf(&b, "| resources | %s |\n", orDash(strings.Join(counts, ", ")))
	fmt.Fprintf(&b, "| drift corrected | %d since the agent started |\n", st.Corrected)
	fmt.Fprintf(&b, "| agent | gitgw %s |\n", st.AgentVersion)
	if len(st.LastPass.Errors) > 0 || st.LastPass.Error != "" {
		b.WriteString("\n## Errors\n\n")
		for _, e := range st.LastPass.Errors {
			fmt.Fprintf(&b, "- `%s`\n", e.String())
		}
		if st.LastPass.Error != "" {
			for _, l := range strings.Split(strings.TrimSpace(st.LastPass.Error), "\n") {
				fmt.Fprintf(&b, "- %s\n", mdEscape(l))
			}
		}
	}
	if len(st.Drift) > 0 {
		b.WriteString("\n## Open drift\n\n")
		for _, it := range st.Drift {
			fmt.Fprintf(&b, "- %s %s `%s`: found `%s`, site says `%s` (%s", it.Driver, it.Kind, it.ID, Value(it.Observed), Value(it.Desired), it.Mode)
			switch it.Adopt {
			case "proposed":
				fmt.Fprintf(&b, "; adopt proposal on `gitgw/adopt/%s`", st.Node)
			case "manual":
				b.WriteString("; adopt by editing the site")
			}
			b.WriteString(")\n")
		}
	}
	if v, ok := VRRPOf(st); ok && len(v.Instances) > 0 {
		b.WriteString("\n## VRRP\n\n| instance | vrid | state | priority |\n|---|---|---|---|\n")
		for _, in := range v.Instances {
			fmt.Fprintf(&b, "| %s | %d | %s | %d |\n", in.Name, in.VRID, in.State, in.Priority)
		}
	}
	if p, ok := ProxyOf(st); ok && len(p.Services) > 0 {
		b.WriteString("\n## Proxy\n\n| service | server | address | health |\n|---|---|---|---|\n")
		for _, s := range p.Services {
			for _, sv := range s.Servers {
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", s.Name, sv.Name, sv.Address, sv.Health)
			}
		}
	}
	var notInSync []Resource
	for _, r := range st.Resources {
		if r.State != InSync {
			notInSync = append(notInSync, r)
		}
	}
	if len(notInSync) > 0 {
		b.WriteString("\n## Not in sync\n\n")
		for i, r := range notInSync {
			if i == maxListed {
				fmt.Fprintf(&b, "- … and %d more (see status.json)\n", len(notInSync)-maxListed)
				break
			}
			fmt.Fprintf(&b, "- %s %s `%s`: %s", r.Driver, r.Kind, r.ID, r.State)
			if r.Reason != "" {
				fmt.Fprintf(&b, " (%s)", mdEscape(r.Reason))
			}
			b.WriteString("\n")
		}
	}
	if len(st.Events) > 0 {
		b.WriteString("\n## Recent events\n\n")
		evs := slices.Clone(st.Events)
		slices.Reverse(evs)
		for _, e := range evs {
			fmt.Fprintf(&b, "- %s %s: %s\n", e.Driver, e.Kind, mdEscape(e.Message))
		}
	}
	b.WriteString("\nMachine-readable: `status.json` (schema_version ")
	fmt.Fprintf(&b, "%d).\n", st.SchemaVersion)
	return []byte(b.String())
}

func headline(st Status) string {
	switch st.LastPass.Outcome {
	case Rejected:
		return fmt.Sprintf("%s rejected, running %s", Short(st.Desired.Commit), orNone(Short(st.Applied)))
	case Failed:
		return fmt.Sprintf("%s failing, running %s", Short(st.Desired.Commit), orNone(Short(st.Applied)))
	case RolledBack:
		return fmt.Sprintf("%s rolled back (health gate), running %s", Short(st.Desired.Commit), orNone(Short(st.Applied)))
	case Held:
		return fmt.Sprintf("%s held (rollout), running %s", Short(st.Desired.Commit), orNone(Short(st.Applied)))
	case Suspended:
		return fmt.Sprintf("%s suspended (gitgw resume applies it), running %s", Short(st.Desired.Commit), orNone(Short(st.Applied)))
	}
	what := " converged"
	if st.LastPass.Outcome == Incomplete {
		what = " not converged" + notDone(st)
	}
	if len(st.Drift) > 0 {
		what += ", " + words.Plural(len(st.Drift), "open drift item")
	}
	return Short(st.Applied) + what
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
