package reconcile

import (
	"time"

	"github.com/gitgw/gitgw/cue/spec"
)

// RunningAware is a Source that takes settings from the state the node
// runs. The agent calls Running with the last good state before each sync:
// a node must fetch a commit before it can read it, so the settings of the
// commit it runs govern the fetch of the next one (nil before the first
// good pass: the source's own defaults).
type RunningAware interface {
	Running(desired *spec.Node)
}

// FetchSpread is the window over which a node running desired spreads the
// fetch of a new commit; flag is the agent's --fetch-spread. The site's
// rollout.fetch_spread wins; else the flag; else, with rollout waves, a
// node after the first wave spreads its fetch over the site's bake
// window: it waits for the wave before it to report the commit applied
// and healthy, which is after that wave's bake, so a fetch within the
// window delays nothing (at worst a wave whose earlier waves have no node
// fetches up to one bake window late). Otherwise 0, at once.
func FetchSpread(desired *spec.Node, flag time.Duration) time.Duration {
	if desired == nil {
		return flag
	}
	r := desired.Site.Rollout
	if r.FetchSpread != nil {
		return r.FetchSpread.D()
	}
	if flag > 0 {
		return flag
	}
	if len(r.Waves) > 0 && waveOf(r.Waves, desired.Node.Labels) > 0 {
		return desired.Site.Bake.Window.D()
	}
	return 0
}

// Running spreads the fetch of the next commit as the running state says
// (FetchSpread, with the source's --fetch-spread as the flag).
func (g *GitSource) Running(desired *spec.Node) {
	g.src.SetFetchSpread(FetchSpread(desired, g.src.DefaultFetchSpread()))
}

// desired is lg's desired state; nil for no last good state.
func (lg *LastGood) desired() *spec.Node {
	if lg == nil {
		return nil
	}
	return lg.Desired
}
