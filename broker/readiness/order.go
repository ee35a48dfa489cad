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
		keys[i] = kb.key(c.Client, c.Name, c.ID, i, rankOf(c.Readiness.State), c.Reachability.Online)
	}
	kb.sort(keys)
	permute(cards, keys)
}

// sortKey is what the queue order looks at, packed so that most comparisons
// are settled by two integers without touching string bytes: a fleet's
// strings are scattered over the heap, and chasing them is what makes a
// large sort slow. idx says where the item the key stands for is.
type sortKey struct {
	// major is the rank in bits 40-47, 1 in bit 39 if offline, and the
	// client's position among the clients in sorted order in bits 0-31.
	major    uint64
	name8    uint64 // the first 8 bytes of name, big-endian, zero-padded
	name, id string
	idx      int32
}

func compareKeys(a, b *sortKey) int {
	if c := cmp.Compare(a.major, b.major); c != 0 {
		return c
	}
	if c := cmp.Compare(a.name8, b.name8); c != 0 {
		return c
	}
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

// prefix8 packs the first 8 bytes of s into an integer that orders like s
// itself, except that strings equal in their first 8 bytes tie.
func prefix8(s string) uint64 {
	var p uint64
	for i := range 8 {
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

func (kb *keyBuilder) key(client, name, id string, idx int, rank uint8, online bool) sortKey {
	major := uint64(rank)<<rankShift | uint64(kb.client(client))
	if !online {
		major |= offlineBit
	}
	return sortKey{major: major, name8: prefix8(name), name: name, id: id, idx: int32(idx)}
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

// sort renumbers the clients in keys by name and sorts keys.
func (kb *keyBuilder) sort(keys []sortKey) {
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
	slices.SortFunc(keys, func(a, b sortKey) int { return compareKeys(&a, &b) })
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
