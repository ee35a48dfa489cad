package readiness

import (
	"cmp"
	"slices"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// Sort orders cards for a technician's queue: by readiness (ready, degraded,
// consent-required, stale, incomplete, then any unknown state), then online
// before offline, then by client, name and ID, compared byte-wise. The order
// is total, so equal inputs give equal outputs on every broker.
func Sort(cards []wire.Card) {
	var kb keyBuilder
	keys := make([]sortKey, len(cards))
	for i := range cards {
		c := &cards[i]
		keys[i] = kb.key(c.Client, c.Name, i, rankOf(c.Readiness.State), c.Reachability.Online)
	}
	kb.sort(keys, cards)
	permute(cards, keys)
}

// sortKey is what the queue order looks at, packed so that most comparisons
// are settled by integers without touching string bytes: a fleet's strings
// are scattered over the heap, and chasing them is what makes a large sort
// slow. Only names equal in their first 16 bytes are compared through idx,
// the index of the card the key stands for.
type sortKey struct {
	// major is the rank in bits 40-47, 1 in bit 39 if offline, and the
	// client's position among the clients in name order in bits 0-31.
	major  uint64
	n0, n1 uint64 // bytes 0-7 and 8-15 of the name (see prefix8)
	idx    int32
}

// compareKeys compares two keys, breaking ties by the full name and ID of
// their cards.
func compareKeys(a, b *sortKey, cards []wire.Card) int {
	if c := cmp.Compare(a.major, b.major); c != 0 {
		return c
	}
	if c := cmp.Compare(a.n0, b.n0); c != 0 {
		return c
	}
	if c := cmp.Compare(a.n1, b.n1); c != 0 {
		return c
	}
	x, y := &cards[a.idx], &cards[b.idx]
	if c := strings.Compare(x.Name, y.Name); c != 0 {
		return c
	}
	return strings.Compare(x.ID, y.ID)
}

// prefix8 packs 8 bytes of s from offset off into an integer that orders
// like those bytes, a string that ends sooner being padded with zeros.
// Where two strings' prefixes differ, the strings differ the same way.
func prefix8(s string, off int) uint64 {
	var p uint64
	for i := off; i < off+8; i++ {
		p <<= 8
		if i < len(s) {
			p |= uint64(s[i])
		}
	}
	return p
}

// keyBuilder makes sortKeys. It numbers clients as it meets them; sort then
// renumbers them in name order. A fleet has far fewer clients than machines,
// and its records usually come grouped by client, so the last client is
// remembered to skip most map look-ups.
type keyBuilder struct {
	ord     map[string]uint32 // client → number, in order of first meeting
	clients []string          // number → client
	last    string
	lastOrd uint32
}

const (
	rankShift  = 40
	offlineBit = 1 << 39
	clientBits = 1<<32 - 1
)

func (kb *keyBuilder) key(client, name string, idx int, rank uint8, online bool) sortKey {
	major := uint64(rank)<<rankShift | uint64(kb.client(client))
	if !online {
		major |= offlineBit
	}
	return sortKey{major: major, n0: prefix8(name, 0), n1: prefix8(name, 8), idx: int32(idx)}
}

func (kb *keyBuilder) client(c string) uint32 {
	if kb.clients != nil && c == kb.last {
		return kb.lastOrd
	}
	if kb.ord == nil {
		kb.ord = make(map[string]uint32)
	}
	n, ok := kb.ord[c]
	if !ok {
		n = uint32(len(kb.clients))
		kb.ord[c] = n
		kb.clients = append(kb.clients, c)
	}
	kb.last, kb.lastOrd = c, n
	return n
}

// sort renumbers the clients in keys by name and sorts keys; cards are the
// cards they index.
func (kb *keyBuilder) sort(keys []sortKey, cards []wire.Card) {
	byName := make([]uint32, len(kb.clients))
	for i := range byName {
		byName[i] = uint32(i)
	}
	slices.SortFunc(byName, func(a, b uint32) int { return strings.Compare(kb.clients[a], kb.clients[b]) })
	rank := make([]uint32, len(byName))
	for pos, n := range byName {
		rank[n] = uint32(pos)
	}
	for i := range keys {
		k := &keys[i]
		k.major = k.major&^clientBits | uint64(rank[k.major&clientBits])
	}
	slices.SortFunc(keys, func(a, b sortKey) int { return compareKeys(&a, &b, cards) })
}

// permute moves cards in place so that position i holds the card that was
// at keys[i].idx, following each cycle of the permutation once. It uses
// keys' idx fields as scratch.
func permute(cards []wire.Card, keys []sortKey) {
	for i := range keys {
		if keys[i].idx < 0 {
			continue // already placed
		}
		tmp := cards[i]
		j := i
		for {
			k := int(keys[j].idx)
			keys[j].idx = -1
			if k == i {
				cards[j] = tmp
				break
			}
			cards[j] = cards[k]
			j = k
		}
	}
}
