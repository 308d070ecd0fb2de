//go:build !race

package l4proxy

const raceEnabled = false
