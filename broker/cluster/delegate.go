package cluster

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate implements memberlist's delegate interfaces for a Cluster, so
// their methods stay off the Cluster's own API.
type delegate struct{ c *Cluster }

var (
	_ memberlist.Delegate         = delegate{}
	_ memberlist.EventDelegate    = delegate{}
	_ memberlist.PingDelegate     = delegate{}
	_ memberlist.ConflictDelegate = delegate{}
)

func (d delegate) NodeMeta(limit int) []byte {
	d.c.mu.Lock()
	defer d.c.mu.Unlock()
	if len(d.c.metaEnc) > limit {
		return nil // cannot happen: encodeMeta keeps to MetaMaxSize
	}
	return d.c.metaEnc
}

func (d delegate) NotifyMsg(b []byte) { d.c.receive(b) }
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.c.queue.GetBroadcasts(overhead, limit)
}
func (d delegate) LocalState(join bool) []byte          { return d.c.localState(join) }
func (d delegate) MergeRemoteState(b []byte, join bool) { d.c.mergeState(b) }
func (d delegate) NotifyJoin(n *memberlist.Node)        { d.c.memberAlive(n) }
func (d delegate) NotifyUpdate(n *memberlist.Node)      { d.c.memberAlive(n) }
func (d delegate) NotifyLeave(n *memberlist.Node)       { d.c.memberGone(n) }
func (d delegate) AckPayload() []byte                   { return nil }
func (d delegate) NotifyPingComplete(n *memberlist.Node, rtt time.Duration, _ []byte) {
	d.c.probed(n.Name, rtt)
}
func (d delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.c.log.Warn("another broker claims this node name: names must be unique",
		"broker", existing.Name, "known_addr", existing.Address(), "other_addr", other.Address())
}
