package brokers_test

import (
	"slices"
	"testing"

	"github.com/readymesh/readymesh/broker/brokers"
	"github.com/readymesh/readymesh/broker/cluster"
)

func TestLeftAlone(t *testing.T) {
	if left := alone().Left(); left != nil {
		t.Errorf("a broker alone lists %v as left", left)
	}
}

// TestLeft: a broker that left cleanly is listed for agents to forget; a
// failed one is not (it may come back), nor one whose peer ID never
// reached the gossip, nor this broker.
func TestLeft(t *testing.T) {
	g := threeBrokers()
	g.members = append(g.members,
		cluster.Member{Name: "e", Region: "eu", State: cluster.StateLeft,
			Meta: cluster.Meta{Name: "eu-2", PeerID: "12D3KooE", Bridge: []string{"/ip4/10.0.0.5/udp/4001/quic-v1"}}},
		cluster.Member{Name: "f", Region: "eu", State: cluster.StateLeft, Meta: cluster.Meta{Name: "eu-3"}})
	l := brokers.New("eu-1", "eu", info, g, nil)
	if left := l.Left(); !slices.Equal(left, []string{"12D3KooE"}) {
		t.Errorf("left %v, want only eu-2's peer", left)
	}
	for _, in := range l.Infos() {
		if in.PeerID == "12D3KooE" {
			t.Errorf("the broker that left is still a failover target: %+v", in)
		}
	}
}
