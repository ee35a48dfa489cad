package reach

import (
	"maps"
	"slices"
)

// OnlineIDs lists the machines bridged to this broker now, sorted: the
// agents this broker tells about a revoked technician.
func (l *Layer) OnlineIDs() []string {
	return slices.Sorted(maps.Keys(l.table.lastBeats()))
}
