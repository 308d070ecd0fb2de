//go:build race

package l4proxy

// raceEnabled: the race detector makes sync.Pool drop a share of what is
// put back, so allocation counts mean nothing.
const raceEnabled = true
