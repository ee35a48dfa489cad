package cluster

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	m := Meta{Name: "eu-1", Region: "eu", PeerID: "12D3KooWabc", HTTP: "10.0.0.1:7480",
		Bridge: []string{"/ip4/10.0.0.1/udp/7400/quic-v1", "/ip4/10.0.0.1/tcp/7400"}, Agents: 1200, Technicians: 7}
	b, dropped, err := encodeMeta(m)
	if err != nil || dropped != 0 {
		t.Fatal(err, dropped)
	}
	got, err := decodeMeta(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	t.Logf("encoded in %d bytes", len(b))
}

// TestMetaBridgeOverflow: bridge addresses that do not fit 512 bytes are
// dropped from the end and the record says so.
func TestMetaBridgeOverflow(t *testing.T) {
	m := Meta{Name: "eu-1", Region: "eu", PeerID: strings.Repeat("p", 52), HTTP: "10.0.0.1:7480"}
	for i := range 20 {
		m.Bridge = append(m.Bridge, fmt.Sprintf("/ip6/2001:db8::%d/udp/7400/quic-v1/p2p/%s", i, strings.Repeat("p", 52)))
	}
	b, dropped, err := encodeMeta(m)
	if err != nil || len(b) > memberlist.MetaMaxSize || dropped == 0 {
		t.Fatalf("%d bytes, %d dropped, %v", len(b), dropped, err)
	}
	got, err := decodeMeta(b)
	if err != nil || !got.BridgeTruncated || len(got.Bridge) != len(m.Bridge)-dropped || got.Bridge[0] != m.Bridge[0] {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	m.HTTP = strings.Repeat("h", 600)
	if _, _, err := encodeMeta(m); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized without bridges: %v", err)
	}
}

// TestMetaTruncatedLogged: New with too many bridge addresses keeps the
// ones that fit and logs it.
func TestMetaTruncatedLogged(t *testing.T) {
	synctest.Test(t, testMetaTruncatedLogged)
}

func testMetaTruncatedLogged(t *testing.T) {
	l := newMemLab(t, ProfileLocal)
	c := l.node("a", nil, func(c *Config) {
		for i := range 30 {
			c.Meta.Bridge = append(c.Meta.Bridge, fmt.Sprintf("/ip4/10.0.0.%d/udp/7400/quic-v1", i))
		}
	})
	me := c.Members()[0]
	if !me.Meta.BridgeTruncated || len(me.Meta.Bridge) == 0 || len(me.Meta.Bridge) >= 30 {
		t.Errorf("own meta %+v", me.Meta)
	}
	if len(l.logs.grep("bridge addresses dropped")) != 1 {
		t.Error("not logged")
	}
}
