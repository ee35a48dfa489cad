package readiness

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

func card(id, client, name, state string, online bool) wire.Card {
	return wire.Card{
		ID: id, Name: name, Client: client,
		Readiness:    wire.Readiness{State: state},
		Reachability: wire.Reachability{Online: online},
	}
}

// queue is a technician's queue in the order Sort must produce.
var queue = []wire.Card{
	card("r9", "acme", "DESKTOP-ABCDEFGH", wire.StateReady, true),
	card("r4", "acme", "DESKTOP-ABCDEFGH1", wire.StateReady, true), // differs after byte 16
	card("r6", "acme", "DESKTOP-ABCDEFGH2", wire.StateReady, true),
	card("r7", "acme", "DESKTOP-ABCDEFGZ", wire.StateReady, true), // differs in bytes 8-15
	card("r1", "acme", "desk-01", wire.StateReady, true),
	card("r2", "acme", "desk-02", wire.StateReady, true),
	card("r3", "acme", "desk-02-long-name", wire.StateReady, true),
	card("r8", "beta", "aaa", wire.StateReady, true),
	card("r5", "acme", "aaa", wire.StateReady, false),
	card("d1", "zeta", "zzz", wire.StateDegraded, true),
	card("d2", "acme", "aaa", wire.StateDegraded, false),
	card("c1", "acme", "x", wire.StateConsentRequired, true),
	card("c2", "acme", "x", wire.StateConsentRequired, false),
	card("s1", "Zulu", "x", wire.StateStale, true), // byte order: "Zulu" < "acme"
	card("s2", "acme", "x", wire.StateStale, true),
	card("s3", "acme", "x", wire.StateStale, false),
	card("i1", "acme", "same", wire.StateIncomplete, false),
	card("i2", "acme", "same", wire.StateIncomplete, false), // same name: ID decides
	card("u1", "acme", "x", "bogus", true),                  // unknown state last
}

func ids(cards []wire.Card) []string {
	out := make([]string, len(cards))
	for i := range cards {
		out[i] = cards[i].ID
	}
	return out
}

func TestSort(t *testing.T) {
	want := ids(queue)
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		cards := slices.Clone(queue)
		r.Shuffle(len(cards), func(i, j int) { cards[i], cards[j] = cards[j], cards[i] })
		Sort(cards)
		if got := ids(cards); !slices.Equal(got, want) {
			t.Fatalf("round %d: order\n%q\nwant\n%q", round, got, want)
		}
	}
	Sort(nil) // must not panic
	one := []wire.Card{queue[3]}
	Sort(one)
	if one[0].ID != queue[3].ID {
		t.Error("sorting one card changed it")
	}
}

// TestSortMatchesComparison checks the packed keys against a plain
// comparison of the fields on a generated fleet.
func TestSortMatchesComparison(t *testing.T) {
	f := genFleet(3000, 5)
	cards := Query(f.machines, f.reachOf, f.visible, wire.MachinesArgs{}, now, Policy{})
	r := rand.New(rand.NewPCG(3, 4))
	r.Shuffle(len(cards), func(i, j int) { cards[i], cards[j] = cards[j], cards[i] })
	Sort(cards)
	for i := 1; i < len(cards); i++ {
		if plainCompare(&cards[i-1], &cards[i]) >= 0 {
			t.Fatalf("cards %d and %d out of order: %+v then %+v", i-1, i, key(&cards[i-1]), key(&cards[i]))
		}
	}
}

type plainKey struct {
	rank                 uint8
	offline              bool
	client, name, cardID string
}

func key(c *wire.Card) plainKey {
	return plainKey{rankOf(c.Readiness.State), !c.Reachability.Online, c.Client, c.Name, c.ID}
}

func plainCompare(a, b *wire.Card) int {
	ka, kb := key(a), key(b)
	switch {
	case ka.rank != kb.rank:
		return int(ka.rank) - int(kb.rank)
	case ka.offline != kb.offline:
		if ka.offline {
			return 1
		}
		return -1
	}
	for _, p := range [][2]string{{ka.client, kb.client}, {ka.name, kb.name}, {ka.cardID, kb.cardID}} {
		if p[0] != p[1] {
			if p[0] < p[1] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// TestPrefix8 checks that the packed name prefixes never order two names
// unlike the names themselves.
func TestPrefix8(t *testing.T) {
	words := []string{"", "a", "a\x00", "ab", "abcdefgh", "abcdefgh0", "abcdefgi", "b", "\xff",
		"DESKTOP-", "DESKTOP-A", "DESKTOP-ABCDEFG", "DESKTOP-ABCDEFGH", "DESKTOP-ABCDEFGH1", "DESKTOP-B"}
	for _, x := range words {
		for _, y := range words {
			kx := [2]uint64{prefix8(x, 0), prefix8(x, 8)}
			ky := [2]uint64{prefix8(y, 0), prefix8(y, 8)}
			c := cmp.Compare(kx[0], ky[0])
			if c == 0 {
				c = cmp.Compare(kx[1], ky[1])
			}
			if c != 0 && c != strings.Compare(x, y) {
				t.Errorf("prefixes order %q and %q unlike the strings", x, y)
			}
		}
	}
}
