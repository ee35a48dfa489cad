package broker

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestMadeUpOpsOneLabel: operation names are the caller's input. Made-up
// ones, long or many, are counted under one label, in the request counter
// and in the refusal counter, and no label value is longer than a known
// operation's name.
func TestMadeUpOpsOneLabel(t *testing.T) {
	tb := startBroker(t)
	admin := tb.admin(t)
	const made = 50
	for i := range made {
		name := fmt.Sprintf("made.up.%d.%s", i, strings.Repeat("x", 2000))
		_, werr := admin.tech(name, nil)
		wantCode(t, werr, wire.CodeBadRequest)
	}
	admin.mustTech(wire.OpWhoAmI, nil, &wire.Technician{})
	values := labelValues(t, tb, "readymesh_tech_requests_total", "op")
	if values[unknownOp] != made {
		t.Errorf("requests counted as %q: %v, want %d", unknownOp, values[unknownOp], made)
	}
	if values[wire.OpWhoAmI] != 1 {
		t.Errorf("requests counted as %q: %v, want 1", wire.OpWhoAmI, values[wire.OpWhoAmI])
	}
	for _, metric := range []struct{ name, label string }{
		{"readymesh_tech_requests_total", "op"}, {"readymesh_refused_total", "request"},
	} {
		for v := range labelValues(t, tb, metric.name, metric.label) {
			if len(v) > 64 || strings.Contains(v, "made.up") {
				t.Errorf("%s has a label %s=%.80q… from caller input", metric.name, metric.label, v)
				break
			}
		}
	}
}

// labelValues sums metric name's counters by the value of label.
func labelValues(t *testing.T, tb *testBroker, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := tb.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// TestStrangerRefusedUnread: a key that was never enrolled, or is not a
// technician, is refused on every protocol but enrolment and login before
// the broker reads its request: it announces a request at the protocol's
// limit, sends a few bytes and keeps the stream open, and is answered at
// once. A broker that read first would wait for the rest until the
// stream's deadline, holding a buffer of the announced size.
func TestStrangerRefusedUnread(t *testing.T) {
	tb := startBroker(t)
	tb.fleet(t)
	stranger := tb.newClient(t)
	for _, tc := range []struct {
		proto protocol.ID
		max   int
		code  string
	}{
		{wire.ProtoCheckIn, tb.cfg.MaxSnapshot, wire.CodeUnauthorized},
		{wire.ProtoPresence, wire.MaxControl, wire.CodeUnauthorized},
		{wire.ProtoTech, wire.MaxControl, wire.CodeUnauthorized},
		{wire.ProtoRelay, wire.MaxControl, wire.CodeUnauthorized},
		{wire.ProtoSessionStatus, wire.MaxControl, wire.CodeUnauthorized},
		{wire.ProtoTranscript, wire.MaxTranscript, wire.CodeForbidden},
	} {
		t.Run(string(tc.proto), func(t *testing.T) {
			data := append(binary.AppendUvarint(nil, uint64(tc.max)), `{"session":"`...)
			var reply struct {
				Error *wire.Error `json:"error"`
			}
			stranger.withT(t).raw(tc.proto, data, false, &reply)
			wantCode(t, reply.Error, tc.code)
		})
	}
}
