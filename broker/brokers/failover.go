package brokers

import "github.com/readymesh/readymesh/broker/cluster"

// Left lists the peer IDs of brokers that left the cluster cleanly (shut
// down, not failed) and that the gossip still remembers (memberlist keeps
// them for its GossipToTheDeadTime, 30 s on a LAN). Agents forget them: a
// broker that shut down is not a failover target until it joins again,
// when it is listed by Infos once more. A broker that failed is not
// listed: it may come back, and its agents should keep trying it.
func (l *List) Left() []string {
	if l.cluster == nil {
		return nil
	}
	var out []string
	for _, m := range l.cluster.Members() {
		if m.State == cluster.StateLeft && m.Meta.PeerID != "" && m.Name != l.cluster.LocalName() {
			out = append(out, m.Meta.PeerID)
		}
	}
	return out
}
