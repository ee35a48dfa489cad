package broker

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/releases"
	"github.com/readymesh/readymesh/broker/replicate"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// Releases: the releases room (package releases) keeps published
// releases and their binaries, and serves the binaries to agents and to
// the other brokers over wire.ProtoRelease. Here it is given what it
// needs of the broker: the store, the cluster's brokers to pull from,
// who a key is, the host to dial with, the audit log and replication.

// newReleases builds the releases room.
func newReleases(b *Broker) *releases.Room {
	c := &b.cfg
	return releases.New(releases.Config{MaxDownloads: c.ReleaseDownloads, Logger: b.log, Now: c.Now, Metrics: b.reg},
		releases.Deps{Blobs: b.store, Records: b.store, Cluster: releaseCluster{repl: b.repl, pools: b.cluster},
			Keys: releaseKeys{machine: b.machine, store: b.store}, Host: b.host, Audit: b.audit, Replication: b.repl})
}

// handleReleases registers wire.ProtoRelease with the room.
func (b *Broker) handleReleases(srv *serve.Server) {
	b.host.SetStreamHandler(wire.ProtoRelease, serve.Handle(srv, b.releases.Spec(), b.releases.Serve))
}

// releaseOps are the release operations: every technician lists and reads
// releases and the fleet's key; only admins publish, withdraw and trust.
func releaseOps(room *releases.Room) (anyone, admin map[string]opFunc) {
	anyone = map[string]opFunc{
		wire.OpReleasesList: func(context.Context, *call) (any, *wire.Error) { return room.List() },
		wire.OpReleasesShow: withArgs(func(_ context.Context, _ *call, a *wire.VersionArgs) (any, *wire.Error) { return room.Show(a) }),
		wire.OpReleaseKey:   func(context.Context, *call) (any, *wire.Error) { return room.Key(), nil },
	}
	admin = map[string]opFunc{
		wire.OpReleasesPublish:  asTech(room.Publish),
		wire.OpReleasesWithdraw: asTech(room.Withdraw),
		wire.OpReleaseKeyTrust:  asTech(room.Trust),
	}
	return anyone, admin
}

// releaseCluster is the other brokers, as the room needs them.
type releaseCluster struct {
	repl  *replicate.Replicator
	pools *cluster.Pools // nil when the broker runs alone
}

func (c releaseCluster) IsMember(peerID string) bool { return c.repl.IsMember(peerID) }

// Brokers returns the other alive brokers with their bridge addresses.
func (c releaseCluster) Brokers() []peer.AddrInfo {
	if c.pools == nil {
		return nil
	}
	var out []peer.AddrInfo
	for _, m := range c.pools.Members() {
		if m.State != cluster.StateAlive || m.Name == c.pools.LocalName() || m.Meta.PeerID == "" {
			continue
		}
		ai, err := bridge.AddrInfo(wire.BrokerInfo{PeerID: m.Meta.PeerID, Addrs: m.Meta.Bridge})
		if err == nil {
			out = append(out, ai)
		}
	}
	return out
}

// releaseKeys says who a key is, as the broker's other protocols do.
type releaseKeys struct {
	machine func(peer.ID) error
	store   *store.Store
}

func (k releaseKeys) Machine(remote peer.ID) error { return k.machine(remote) }

func (k releaseKeys) Technician(remote peer.ID) (wire.Technician, error) {
	t, err := k.store.TechnicianByKey(remote.String())
	return t, technicianRefusal(t, err)
}
