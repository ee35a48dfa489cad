package serve_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestQuota: requests are reserved from their protocol's memory quota
// before their bodies are read. While one request holds most of the
// quota, a second one that would exceed it is refused unread
// ("unavailable"); once the first is answered, the quota is free again.
func TestQuota(t *testing.T) {
	const proto = protocol.ID("/readymesh/serve-test/quota")
	key, _, err := identity.LoadOrCreate(filepath.Join(t.TempDir(), "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	server, err := bridge.NewHost(bridge.HostConfig{Key: key, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
		MaxConns: 100, Quotas: map[protocol.ID]bridge.Quota{proto: {Total: 1 << 20, PerPeer: 1 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	r := &rig{server: server, client: newHost(t), reg: prometheus.NewRegistry()}
	r.srv = serve.New(nil, r.reg)
	connect(t, r.client, server)

	holding, release := make(chan struct{}), make(chan struct{})
	spec := serve.Spec{Name: "quota", Deadline: exchangeTimeout, MaxRequest: 1 << 20,
		Reply: func() wire.Refusable { return &wire.CheckInAck{} }}
	server.SetStreamHandler(proto, serve.Handle(r.srv, spec, func(s *serve.Stream, req *wire.Hello) (any, error) {
		if req.AgentVersion == "hold" {
			close(holding)
			<-release
		}
		return &wire.CheckInAck{Seq: 1}, nil
	}))
	// A 768 KiB hello: JSON allows the padding.
	big := func(version string) []byte {
		return frame(`{"machine_id":"m1","agent_version":"` + version + `"}` + strings.Repeat(" ", 768<<10))
	}
	first := make(chan error, 1)
	go func() {
		var ack wire.CheckInAck
		first <- r.send(proto, big("hold"), &ack)
	}()
	<-holding
	var ack wire.CheckInAck
	if err := r.send(proto, big("second"), &ack); err != nil {
		t.Fatal(err)
	}
	if ack.Error == nil || ack.Error.Code != wire.CodeUnavailable || !strings.Contains(ack.Error.Message, "no memory left") {
		t.Fatalf("second request over the quota: %+v, want refused unavailable", ack)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	ack = wire.CheckInAck{}
	if err := r.send(proto, big("third"), &ack); err != nil || ack.Error != nil || ack.Seq != 1 {
		t.Fatalf("request after the quota was freed: %+v, %v", ack, err)
	}
}

func connect(t *testing.T, from, to host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	if err := from.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()}); err != nil {
		t.Fatal(err)
	}
}
