package sessiond

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

// The agent's decoders of what brokers and technicians send it live in
// peer/wire, mesh and sessiond/channel, each with its fuzz targets; this
// one follows a decoded broker list into what the agent keeps of it.

// FuzzLearnBrokers decodes a presence hello or heartbeat ack as the agent
// reads it and applies the broker list it carries to the agent's set:
// learn the brokers listed, forget those said to have left. Whatever a
// broker sends, the set keeps the enrolled broker and the one in use,
// holds at most wire.MaxBrokers, each once, with an ID and an address,
// home region first, holds none of the others said to have left, and
// learning what it holds changes nothing.
func FuzzLearnBrokers(f *testing.F) {
	home := info("12D3KooWHome", "eu")
	for _, v := range []any{
		wire.HelloReply{HeartbeatMS: 5000, Brokers: []wire.BrokerInfo{home, info("12D3KooWEu2", "eu"), info("12D3KooWUs1", "us")}},
		wire.HelloReply{HeartbeatMS: 5000, Brokers: []wire.BrokerInfo{info("12D3KooWUs1", "us"), info("12D3KooWUs1", "eu"), {PeerID: "x"}}},
		wire.HeartbeatAck{Seq: 9, Brokers: []wire.BrokerInfo{{PeerID: "12D3KooWHome", Addrs: []string{"/dns4/new/udp/1/quic-v1"}, Region: "us"}}},
		wire.HeartbeatAck{Seq: 10, Brokers: []wire.BrokerInfo{info("12D3KooWEu2", "eu")}, Left: []string{"12D3KooWHome", "12D3KooWEu2", "12D3KooWUs1"}},
		wire.HelloReply{Error: &wire.Error{Code: wire.CodeUnauthorized, Message: "unknown machine"}},
	} {
		raw, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var hello wire.HelloReply
		if wire.Decode(body, &hello) == nil {
			checkLearn(t, home, hello.Brokers, hello.Left)
		}
		var ack wire.HeartbeatAck
		if wire.Decode(body, &ack) == nil {
			checkLearn(t, home, ack.Brokers, ack.Left)
		}
	})
}

// checkLearn applies a broker list to a set enrolled with home, whose
// broker in use is a learned one when there is one, and checks the
// invariants FuzzLearnBrokers states.
func checkLearn(t *testing.T, home wire.BrokerInfo, brokers []wire.BrokerInfo, left []string) {
	t.Helper()
	s := newBrokerSet(home, []wire.BrokerInfo{info("12D3KooWUsed", "us")})
	s.failed() // in use: the learned broker
	cur := s.current().PeerID
	s.learn(brokers)
	s.forget(left)
	list := s.all()
	if len(list) > wire.MaxBrokers {
		t.Fatalf("%d brokers kept", len(list))
	}
	if s.current().PeerID != cur || !slices.ContainsFunc(list, func(b wire.BrokerInfo) bool { return b.PeerID == home.PeerID }) {
		t.Fatalf("lost the broker in use or the enrolled one: %+v", list)
	}
	seen := map[string]bool{}
	for i, b := range list {
		if b.PeerID == "" || len(b.Addrs) == 0 || seen[b.PeerID] {
			t.Fatalf("kept broker %d without ID or address, or twice: %+v", i, list)
		}
		seen[b.PeerID] = true
		if i > 0 && b.Region == home.Region && list[i-1].Region != home.Region {
			t.Fatalf("home region not first: %+v", list)
		}
		if b.PeerID != cur && b.PeerID != home.PeerID && slices.Contains(left, b.PeerID) {
			t.Fatalf("kept broker %s, which left", b.PeerID)
		}
	}
	if s.learn(list) {
		t.Fatalf("learning the set's own brokers changed it: %+v", list)
	}
}
