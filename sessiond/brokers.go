package sessiond

import (
	"slices"
	"sync"

	"github.com/readymesh/readymesh/peer/wire"
)

// brokerSet is the brokers an agent may bridge to: the one it enrolled with
// and those it has learned over the bridge since (every broker of the
// cluster lists its members in the presence hello). Brokers of the enrolled
// broker's region come first, so an agent fails over within its region
// before it crosses to another.
//
// Learned brokers are trusted because they were named by a broker the agent
// had already authenticated; each is still dialled by its pinned peer ID.
// A broker that left the cluster cleanly is forgotten when a broker says
// so (forget); one that failed is kept, as it may come back. The set holds
// at most wire.MaxBrokers brokers.
type brokerSet struct {
	region   string // the home region; immutable
	enrolled string // the enrolled broker's peer ID, never forgotten; immutable

	mu    sync.Mutex        // mu guards all following fields
	list  []wire.BrokerInfo // candidates in preference order
	cur   int               // index of the broker tried now
	tried int               // failed attempts since the last success
}

func newBrokerSet(enrolled wire.BrokerInfo, learned []wire.BrokerInfo) *brokerSet {
	s := &brokerSet{region: enrolled.Region, enrolled: enrolled.PeerID, list: []wire.BrokerInfo{enrolled}}
	s.learn(learned)
	return s
}

// current returns the broker to try now.
func (s *brokerSet) current() wire.BrokerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list[s.cur]
}

// failed records that the current broker could not be reached and moves to
// the next one. It reports whether every candidate has failed since the
// last success, which is when the caller should back off.
func (s *brokerSet) failed() (allFailed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tried++
	s.cur = (s.cur + 1) % len(s.list)
	return s.tried%len(s.list) == 0
}

// succeeded resets the failure count.
func (s *brokerSet) succeeded() {
	s.mu.Lock()
	s.tried = 0
	s.mu.Unlock()
}

// learn merges brokers named by a broker and reports whether the set
// changed. Addresses of known brokers are replaced by the newer ones.
func (s *brokerSet) learn(infos []wire.BrokerInfo) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	curID := s.list[s.cur].PeerID
	changed := false
	for _, in := range infos {
		if in.PeerID == "" || len(in.Addrs) == 0 {
			continue
		}
		i := slices.IndexFunc(s.list, func(b wire.BrokerInfo) bool { return b.PeerID == in.PeerID })
		switch {
		case i < 0 && len(s.list) < wire.MaxBrokers:
			s.list = append(s.list, in)
			changed = true
		case i < 0: // full: a list that long is not a cluster's
		case !slices.Equal(s.list[i].Addrs, in.Addrs) || s.list[i].Region != in.Region || s.list[i].Name != in.Name:
			s.list[i] = in
			changed = true
		}
	}
	if changed {
		// Home region first; the sort is stable, so the enrolled broker
		// leads its region and learned brokers keep their order.
		slices.SortStableFunc(s.list, func(a, b wire.BrokerInfo) int {
			return s.rankLocked(a) - s.rankLocked(b)
		})
		s.cur = slices.IndexFunc(s.list, func(b wire.BrokerInfo) bool { return b.PeerID == curID })
	}
	return changed
}

// forget drops the brokers whose peer IDs are in ids, which left the
// cluster cleanly, and reports whether the set changed. The enrolled
// broker and the one in use are kept: the first is where the agent
// belongs, and the one in use is the broker that said the others left.
func (s *brokerSet) forget(ids []string) bool {
	if len(ids) == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	curID := s.list[s.cur].PeerID
	n := len(s.list)
	s.list = slices.DeleteFunc(s.list, func(b wire.BrokerInfo) bool {
		return b.PeerID != curID && b.PeerID != s.enrolled && slices.Contains(ids, b.PeerID)
	})
	if len(s.list) == n {
		return false
	}
	s.cur = slices.IndexFunc(s.list, func(b wire.BrokerInfo) bool { return b.PeerID == curID })
	return true
}

// rankLocked orders brokers of the home region first. s.mu must be held.
func (s *brokerSet) rankLocked(b wire.BrokerInfo) int {
	if b.Region == s.region {
		return 0
	}
	return 1
}

// all returns a copy of the candidates, for the local database.
func (s *brokerSet) all() []wire.BrokerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.list)
}
