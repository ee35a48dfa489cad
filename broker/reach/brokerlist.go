package reach

import (
	"encoding/json"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Agents learn the cluster's brokers on their presence stream: the hello
// reply lists them, and when the list changes (a broker joined, left or
// changed its addresses) the next heartbeat ack lists them again. So an
// agent that enrolled before the cluster grew still fails over to every
// broker, and learns of a change within one heartbeat plus
// Config.BrokerListRefresh.
//
// Every presence stream compares the list on every heartbeat, so the list
// is built from the cluster's membership at most once per refresh and
// shared; a stream keeps only the digest of the version it sent last.

// brokerList is the broker list as agents are told it, cached.
type brokerList struct {
	src   Brokers
	every time.Duration
	now   func() time.Time

	mu  sync.Mutex     // guards all following fields
	at  time.Time      // when cur was last checked against src
	cur *brokerVersion // nil until the first get
}

// brokerVersion is one version of the list. It is never modified once
// built, so streams share it without a lock.
type brokerVersion struct {
	digest  uint64
	brokers []wire.BrokerInfo
	left    []string
}

// get returns the current version, rebuilding it when the cached one is
// older than the refresh interval.
func (c *brokerList) get() *brokerVersion {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.cur != nil && now.Sub(c.at) < c.every {
		return c.cur
	}
	next := buildList(c.src.Infos(), c.src.Left())
	if c.cur == nil || next.digest != c.cur.digest {
		c.cur = next
	}
	c.at = now
	return c.cur
}

// buildList bounds a list as agents accept it (see wire.MaxBrokers): a
// broker that would not fit, or that fails wire's bounds, is left out
// rather than have every agent refuse the whole list. This broker comes
// first in infos, so it always fits.
func buildList(infos []wire.BrokerInfo, left []string) *brokerVersion {
	v := &brokerVersion{}
	for _, in := range infos {
		if len(v.brokers) == wire.MaxBrokers {
			break
		}
		in.Addrs = slices.Clone(in.Addrs[:min(len(in.Addrs), wire.MaxBrokerAddrs)])
		if in.Validate() == nil {
			v.brokers = append(v.brokers, in)
		}
	}
	for _, id := range left {
		if len(v.left) < wire.MaxBrokers && id != "" && len(id) <= 256 {
			v.left = append(v.left, id)
		}
	}
	v.digest = digest(v)
	return v
}

// digest identifies a version by its content, so a rebuild that finds the
// same brokers sends nothing new.
func digest(v *brokerVersion) uint64 {
	h := fnv.New64a()
	// Encoding a list of plain strings cannot fail.
	json.NewEncoder(h).Encode(struct {
		B []wire.BrokerInfo
		L []string
	}{v.brokers, v.left})
	return h.Sum64()
}

// ackList fills ack with the broker list when it changed since the version
// whose digest is *sent, and records the new one.
func (c *brokerList) ackList(ack *wire.HeartbeatAck, sent *uint64) bool {
	v := c.get()
	if v.digest == *sent {
		return false
	}
	ack.Brokers, ack.Left, *sent = v.brokers, v.left, v.digest
	return true
}
