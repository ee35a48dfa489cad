package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// brokers returns n listed brokers with addrs addresses each.
func brokers(n, addrs int) []BrokerInfo {
	out := make([]BrokerInfo, n)
	for i := range out {
		b := BrokerInfo{PeerID: fmt.Sprintf("12D3KooWBroker%d", i), Name: fmt.Sprintf("eu-%d", i), Region: "eu"}
		for a := range addrs {
			b.Addrs = append(b.Addrs, fmt.Sprintf("/ip4/192.0.2.%d/udp/%d/quic-v1", i%250, 7400+a))
		}
		out[i] = b
	}
	return out
}

func TestBrokerListBounds(t *testing.T) {
	long := strings.Repeat("x", maxBrokerField+1)
	tests := []struct {
		desc    string
		brokers []BrokerInfo
		left    []string
		bad     string // a word of the error; "" means accepted
	}{
		{desc: "none", bad: ""},
		{desc: "a cluster", brokers: brokers(3, 3), left: []string{"12D3KooWGone"}},
		{desc: "at the bounds", brokers: brokers(MaxBrokers, MaxBrokerAddrs), left: make64("12D3KooWGone")},
		{desc: "one broker too many", brokers: brokers(MaxBrokers+1, 1), bad: "65 brokers"},
		{desc: "one address too many", brokers: brokers(1, MaxBrokerAddrs+1), bad: "17 addresses"},
		{desc: "one left too many", left: append(make64("x"), "x"), bad: "65 brokers left"},
		{desc: "a long address", brokers: []BrokerInfo{{PeerID: "p", Addrs: []string{long}}}, bad: "address of 257 bytes"},
		{desc: "a long name", brokers: []BrokerInfo{{PeerID: "p", Name: long}}, bad: "longer than 256"},
		{desc: "a long left ID", left: []string{long}, bad: "257 bytes"},
		{desc: "an empty left ID", left: []string{""}, bad: "0 bytes"},
		{desc: "a bad STUN port", brokers: []BrokerInfo{{PeerID: "p", STUNPort: 70000}}, bad: "stun_port"},
		// Entries without an ID or address are the receiver's to skip:
		// earlier brokers may send them.
		{desc: "an entry without address", brokers: []BrokerInfo{{PeerID: "p"}}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			for _, v := range []any{&HelloReply{HeartbeatMS: 5000, Brokers: tt.brokers, Left: tt.left},
				&HeartbeatAck{Seq: 1, Brokers: tt.brokers, Left: tt.left}} {
				raw, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				err = decodeAs(v, raw)
				switch {
				case tt.bad == "" && err != nil:
					t.Errorf("%T refused: %v", v, err)
				case tt.bad != "" && (err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.bad)):
					t.Errorf("%T: got %v, want a malformed error saying %q", v, err, tt.bad)
				}
			}
		})
	}
}

func make64(id string) []string {
	out := make([]string, MaxBrokers)
	for i := range out {
		out[i] = id
	}
	return out
}

// decodeAs decodes raw into a fresh value of v's type.
func decodeAs(v any, raw []byte) error {
	switch v.(type) {
	case *HelloReply:
		return Decode(raw, &HelloReply{})
	case *HeartbeatAck:
		return Decode(raw, &HeartbeatAck{})
	}
	panic(fmt.Sprintf("decodeAs: %T", v))
}

func TestHelloReplyHeartbeatBounds(t *testing.T) {
	for ms, ok := range map[int64]bool{0: true, 5000: true, maxHeartbeatMS: true, -1: false, maxHeartbeatMS + 1: false} {
		err := Decode(mustMarshal(t, HelloReply{HeartbeatMS: ms}), &HelloReply{})
		if (err == nil) != ok {
			t.Errorf("heartbeat_ms %d: %v, want accepted %v", ms, err, ok)
		}
	}
}

// TestBrokerListCompatible: an ack of an earlier broker (no list) decodes
// with none, and a new ack's list is what an earlier agent's ack type,
// which lacks the fields, ignores.
func TestBrokerListCompatible(t *testing.T) {
	var ack HeartbeatAck
	if err := Decode([]byte(`{"seq":7,"check_in":true}`), &ack); err != nil || ack.Seq != 7 || !ack.CheckIn || ack.Brokers != nil || ack.Left != nil {
		t.Fatalf("an earlier broker's ack decoded as %+v, %v", ack, err)
	}
	raw := mustMarshal(t, HeartbeatAck{Seq: 8, Brokers: brokers(2, 2), Left: []string{"12D3KooWGone"}})
	var earlier struct {
		Seq     uint64 `json:"seq"`
		CheckIn bool   `json:"check_in,omitempty"`
	}
	if err := json.Unmarshal(raw, &earlier); err != nil || earlier.Seq != 8 {
		t.Fatalf("an earlier agent read %s as %+v, %v", raw, earlier, err)
	}
	var got HeartbeatAck
	if err := Decode(raw, &got); err != nil || len(got.Brokers) != 2 || got.Left[0] != "12D3KooWGone" {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	if !strings.Contains(string(raw), `"left_brokers":["12D3KooWGone"]`) {
		t.Errorf("encoded %s, want the left_brokers field", raw)
	}
	if raw := mustMarshal(t, HeartbeatAck{Seq: 9}); string(raw) != `{"seq":9}` {
		t.Errorf("an ack without a list encodes as %s, want only its seq", raw)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// FuzzDecodeBrokerList decodes presence replies and acks carrying broker
// lists: whatever is accepted stays within the bounds and round-trips.
func FuzzDecodeBrokerList(f *testing.F) {
	for _, v := range []any{
		&HelloReply{HeartbeatMS: 5000, Brokers: []BrokerInfo{testBrokerInfo}, Left: []string{"12D3KooWGone"}},
		&HeartbeatAck{Seq: 3, Brokers: append([]BrokerInfo{testBrokerInfo}, brokers(2, 3)...)},
		&HeartbeatAck{Seq: 4, CheckIn: true, Brokers: brokers(1, 1), Left: []string{"a", "b"}},
	} {
		f.Add(mustJSON(f, v))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if r, ok := roundTrip[HelloReply](t, body); ok {
			checkBounds(t, r.Brokers, r.Left)
		}
		if a, ok := roundTrip[HeartbeatAck](t, body); ok {
			checkBounds(t, a.Brokers, a.Left)
		}
	})
}

func checkBounds(t *testing.T, bs []BrokerInfo, left []string) {
	t.Helper()
	if len(bs) > MaxBrokers || len(left) > MaxBrokers {
		t.Fatalf("accepted %d brokers and %d left", len(bs), len(left))
	}
	for _, b := range bs {
		if len(b.Addrs) > MaxBrokerAddrs {
			t.Fatalf("accepted a broker with %d addresses", len(b.Addrs))
		}
	}
}
