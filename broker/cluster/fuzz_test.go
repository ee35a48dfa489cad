package cluster

import (
	"reflect"
	"testing"
)

// The decoders below read bytes from other brokers. Each fuzz target
// checks that any input decodes without panicking and that what decodes
// survives encode → decode unchanged.

func FuzzDecodeMessage(f *testing.F) {
	f.Add(presEvent{origin: "eu-1", inc: 1712345678901234567, item: item("12D3KooWmachine", 42, true, 1712345678901)}.encode())
	f.Add(presEvent{origin: "eu-1", inc: 1, item: item("m", 43, false, -5)}.encode())
	f.Add(userMsg{origin: "us-2", inc: 7, seq: 9, topic: "record", payload: []byte("x changed v3")}.encode())
	f.Add(notice{kind: kindLeave, origin: "eu-1", inc: 3}.encode())
	f.Add(notice{kind: kindHello, origin: "eu-1", inc: 4}.encode())
	f.Add(note("eu-1", "12D3KooWmachine", 1712345678901, 1712345678901234567, `{"reason":"asleep"}`).encode())
	f.Add(note("eu-1", "m", -1, 0, "").encode())
	f.Add([]byte{9})
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := decodeMessage(b)
		if err != nil {
			return
		}
		var enc []byte
		switch m := msg.(type) {
		case presEvent:
			enc = m.encode()
		case userMsg:
			enc = m.encode()
		case notice:
			enc = m.encode()
		case noteItem:
			enc = m.encode()
		default:
			t.Fatalf("decoded %T", msg)
		}
		again, err := decodeMessage(enc)
		if err != nil || !reflect.DeepEqual(again, msg) {
			t.Fatalf("round trip: %+v → %+v, %v", msg, again, err)
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	s := pushState{sender: "eu-1", digest: []byte("readiness digest"), sections: []presSection{
		{origin: "eu-1", inc: 5, floor: 9, items: []presItem{item("m1", 3, true, 1000), item("m2", 9, true, 2000)}},
		{origin: "us-2", inc: 6, floor: 1, items: []presItem{item("m3", 2, false, 3000)}},
	}}
	f.Add(s.encode())
	f.Add(pushState{sender: "x"}.encode())
	s.version = stateV2
	s.notes = []noteItem{note("us-2", "m1", 4000, 7, "asleep"), note("eu-1", "m4", 5000, 8, "")}
	f.Add(s.encode())
	f.Add(pushState{version: stateV2, sender: "x"}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeState(b)
		if err != nil {
			return
		}
		again, err := decodeState(st.encode())
		if err != nil || !reflect.DeepEqual(again, st) {
			t.Fatalf("round trip: %+v → %+v, %v", st, again, err)
		}
	})
}

func FuzzDecodeMeta(f *testing.F) {
	b, _, _ := encodeMeta(Meta{Name: "eu-1", Region: "eu", PeerID: "12D3KooW", HTTP: "10.0.0.1:7480",
		Bridge: []string{"/ip4/10.0.0.1/udp/7400/quic-v1"}, Agents: 10, Technicians: 2})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil || len(b) > 512 {
			return
		}
		enc, dropped, err := encodeMeta(m)
		if err != nil || dropped != 0 {
			t.Fatalf("re-encode of %d-byte meta: %d dropped, %v", len(b), dropped, err)
		}
		again, err := decodeMeta(enc)
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip: %+v → %+v, %v", m, again, err)
		}
	})
}
