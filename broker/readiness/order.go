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
	sortKeys(keys, clientRanks(&kb)[0], 0, cards)
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

// keyBuilder makes sortKeys. It numbers clients as it meets them;
// clientRanks and sortKeys then renumber them in name order. A fleet has
// far fewer clients than machines, and its records often come grouped by
// client, so the last client is remembered to skip most map look-ups.
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

// clientRanks puts every client that the builders met in name order, and
// returns for each builder the table from its own client numbers to
// positions in that order.
func clientRanks(kbs ...*keyBuilder) [][]uint32 {
	var all []string
	for _, kb := range kbs {
		all = append(all, kb.clients...)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	ranks := make([][]uint32, len(kbs))
	for i, kb := range kbs {
		ranks[i] = make([]uint32, len(kb.clients))
		for n, c := range kb.clients {
			pos, _ := slices.BinarySearch(all, c)
			ranks[i][n] = uint32(pos)
		}
	}
	return ranks
}

// sortKeys turns the client numbers in keys into ranks, adds offset to
// each idx and sorts keys; cards are the cards that idx then indexes.
func sortKeys(keys []sortKey, rank []uint32, offset int, cards []wire.Card) {
	for i := range keys {
		k := &keys[i]
		k.major = k.major&^clientBits | uint64(rank[k.major&clientBits])
		k.idx += int32(offset)
	}
	slices.SortFunc(keys, func(a, b sortKey) int { return compareKeys(&a, &b, cards) })
}

// mergeKeys merges sorted runs of keys into one sorted slice. There are
// only a few runs, one per worker, so it scans their heads.
func mergeKeys(runs [][]sortKey, cards []wire.Card) []sortKey {
	if len(runs) == 1 {
		return runs[0]
	}
	n := 0
	for _, r := range runs {
		n += len(r)
	}
	runs = slices.Clone(runs)
	out := make([]sortKey, 0, n)
	for len(out) < n {
		best := -1
		for i, r := range runs {
			if len(r) > 0 && (best < 0 || compareKeys(&r[0], &runs[best][0], cards) < 0) {
				best = i
			}
		}
		out = append(out, runs[best][0])
		runs[best] = runs[best][1:]
	}
	return out
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
