package readiness

import (
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/release"
)

// CompareVersions compares two agent versions: release.CompareVersions,
// the one order agents, rollouts and these rules share.
func CompareVersions(a, b string) int { return release.CompareVersions(a, b) }

// Newest returns the newest agent version among ms, by CompareVersions.
// Empty and unparsable versions are ignored unless no machine has a
// parsable one, so a single "dev" build cannot mark the whole fleet as
// behind. It returns "" if no machine reports a version.
func Newest(ms []store.Machine) string {
	var n newest
	for i := range ms {
		n.add(ms[i].AgentVersion)
	}
	return n.v
}

// newest is the newest version seen so far, by Newest's rule. The zero
// value has seen none.
type newest struct {
	v  string
	ok bool // v is parsable
}

// add takes v into account.
func (n *newest) add(v string) {
	if v == "" || v == n.v {
		return
	}
	ok := release.ComparableVersion(v)
	switch {
	case n.v == "", ok && !n.ok:
		n.v, n.ok = v, ok
	case ok == n.ok && CompareVersions(v, n.v) > 0:
		n.v = v
	}
}
