package replicate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/cluster"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// members is a cluster of fixed membership that records broadcasts.
type members struct {
	list  []cluster.Member
	local string
	sent  []string
}

func (m *members) Members() []cluster.Member { return m.list }
func (m *members) LocalName() string         { return m.local }
func (m *members) Broadcast(topic string, payload []byte) error {
	m.sent = append(m.sent, topic+" "+string(payload))
	return nil
}

func code(err error) string {
	var e *wire.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// TestServeAdmitsMembersOnly: only a member's peer ID is admitted, before
// its request is read; a broker that never joined a cluster admits none.
func TestServeAdmitsMembersOnly(t *testing.T) {
	r := New(Config{}, fleettest.Open(t), nil)
	const member = peer.ID("member-peer")
	if err := r.Spec().Admit(member); code(err) != wire.CodeForbidden {
		t.Fatalf("alone: admit %v, want forbidden", err)
	}
	r.Join(&members{local: "b1", list: []cluster.Member{{Name: "b2", Meta: cluster.Meta{PeerID: member.String()}}}})
	if err := r.Spec().Admit(member); err != nil {
		t.Fatalf("member refused: %v", err)
	}
	if err := r.Spec().Admit("stranger"); code(err) != wire.CodeForbidden {
		t.Fatalf("stranger: admit %v, want forbidden", err)
	}
}

// TestServeRefusals: requests out of bounds are refused and change
// nothing; a good export returns the records asked for.
func TestServeRefusals(t *testing.T) {
	st := fleettest.Open(t)
	if _, err := st.CreateClient("acme", time.Now()); err != nil {
		t.Fatal(err)
	}
	r := New(Config{}, st, nil)
	tooMany := make([]store.Key, maxExportKeys+1)
	for _, tt := range []struct {
		name string
		req  request
		want string
	}{
		{"bucket below range", request{Op: "versions", Buckets: []int{-1}}, wire.CodeBadRequest},
		{"bucket above range", request{Op: "versions", Buckets: []int{store.DigestBuckets}}, wire.CodeBadRequest},
		{"too many keys", request{Op: "export", Keys: tooMany}, wire.CodeTooLarge},
		{"unknown op", request{Op: "drop"}, wire.CodeBadRequest},
	} {
		if _, err := r.Serve(&serve.Stream{}, &tt.req); code(err) != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.want)
		}
	}
	rep, err := r.Serve(&serve.Stream{}, &request{Op: "export", Keys: []store.Key{{Kind: store.KindClient, ID: "acme"}}})
	if err != nil || len(rep.(*reply).Records) != 1 {
		t.Fatalf("export: %+v, %v", rep, err)
	}
}

// TestWrittenAndCopyAlone: a broker alone gossips nothing and copies to
// nobody; in a cluster each written key is one notice.
func TestWrittenAndCopyAlone(t *testing.T) {
	r := New(Config{}, fleettest.Open(t), nil)
	r.Written(store.Key{Kind: store.KindClient, ID: "acme"})
	r.CopyToPeer(context.Background(), store.Key{Kind: store.KindClient, ID: "acme"}) // no peer: returns at once
	m := &members{local: "b1"}
	r.Join(m)
	r.Written(store.Key{Kind: store.KindClient, ID: "acme"}, store.Key{Kind: store.KindMachine, ID: "m1"})
	if len(m.sent) != 2 || m.sent[0] != NoticeTopic+` {"kind":"client","id":"acme"}` {
		t.Fatalf("notices %q", m.sent)
	}
}
