package cluster

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// The Cluster's background workers. Start's run goroutine owns them; each
// returns when its context ends.

// joinLoop joins Config.Join, retrying with exponential backoff (with
// jitter) until one address answers or ctx ends.
func (c *Cluster) joinLoop(ctx context.Context) {
	if len(c.join) == 0 {
		close(c.joined)
		return
	}
	wait := c.timing.joinMin
	for attempt := 1; ; attempt++ {
		n, err := c.ml.Join(c.join)
		if n > 0 {
			c.log.Info("joined the cluster", "contacted", n, "attempts", attempt)
			close(c.joined)
			return
		}
		c.logJoinError(err, attempt, wait)
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, c.timing.joinMax)
	}
}

func (c *Cluster) logJoinError(err error, attempt int, wait time.Duration) {
	if err != nil {
		// memberlist's multierror spans lines; keep the log entry on one.
		err = errors.New(strings.Join(strings.Fields(err.Error()), " "))
	}
	if err != nil && isKeyMismatch(err.Error()) {
		c.log.Warn("join failed: peer's gossip could not be decrypted: wrong --gossip-key-file?",
			"join", c.join, "attempt", attempt, "retry_within", wait, "err", err)
		return
	}
	c.log.Info("join failed, retrying", "join", c.join, "attempt", attempt, "retry_within", wait, "err", err)
}

// tombstoneTTL bounds how long an offline statement above its origin's
// floor is kept, in push/pull intervals: by then anti-entropy has almost
// surely raised the floor past it (see presence).
const tombstoneTTL = 5

// housekeep expires state every housekeeping interval until ctx ends.
func (c *Cluster) housekeep(ctx context.Context) {
	t := time.NewTicker(c.timing.housekeepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := c.now()
		c.mu.Lock()
		c.pres.expire(now, tombstoneTTL*c.mlConf.PushPullInterval)
		c.notes.expire(now, c.noteTTL, c.markNoteLocked)
		c.forgetLocked(now, c.mlConf.GossipToTheDeadTime)
		dropped := c.dropped
		c.dropped = 0
		c.mu.Unlock()
		if dropped > 0 {
			c.log.Warn("broadcasts dropped: OnMessage handlers too slow", "dropped", dropped)
		}
		if c.queue.NumQueued() > maxQueued {
			c.queue.Prune(maxQueued)
		}
	}
}

// maxQueued bounds the gossip queue. Beyond it the oldest messages are
// dropped; push/pull repairs what they would have carried.
const maxQueued = 4096

// maxResync bounds the members waiting for a repeated push/pull.
const maxResync = 16

// reconnectLoop tries, every reconnect interval, to join up to three
// failed (not left) members, so a healed partition merges again:
// memberlist itself stops talking to dead members after
// GossipToTheDeadTime. While this broker is alone it also retries
// Config.Join. A join to an address that drops packets blocks for
// memberlist's TCPTimeout (LAN 10 s), and Close waits for it.
//
// It also makes the push/pull exchanges memberAlive asks for: a join is
// memberlist's only way to start one with a given member.
func (c *Cluster) reconnectLoop(ctx context.Context) {
	t := time.NewTicker(c.timing.reconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-c.resync:
			n, err := c.ml.Join([]string{a})
			c.log.Debug("push/pull again with a broker that does not read notes", "addr", a, "contacted", n, "err", err)
			continue
		case <-t.C:
		}
		for _, a := range c.reconnectTargets() {
			if ctx.Err() != nil {
				return
			}
			n, err := c.ml.Join([]string{a})
			c.log.Debug("reconnect", "addr", a, "contacted", n, "err", err)
		}
	}
}

// reconnectTargets picks the addresses reconnectLoop tries.
func (c *Cluster) reconnectTargets() []string {
	c.mu.Lock()
	var addrs []string
	for _, m := range c.members {
		if m.State == StateDead {
			addrs = append(addrs, m.Addr)
		}
	}
	alone := c.alive.Load() <= 1
	c.mu.Unlock()
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	addrs = addrs[:min(len(addrs), 3)]
	select {
	case <-c.joined:
		if alone {
			addrs = append(addrs, c.join...)
		}
	default: // joinLoop is still at it
	}
	return addrs
}

// metaLoop pushes metadata changes, at most one per metadata interval.
func (c *Cluster) metaLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.metaCh:
		}
		// UpdateNode waits until the update has been gossiped, bounded.
		if err := c.ml.UpdateNode(10 * c.mlConf.GossipInterval); err != nil {
			c.log.Debug("metadata update not fully gossiped yet", "err", err)
		}
		t := time.NewTimer(c.timing.metaUpdateInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// maxPush bounds the news waiting for pushLoop. In a burst (a broker
// restarting with thousands of agents reconnecting) the rest goes only
// through gossip, which batches many statements per packet.
const maxPush = 256

// pushLoop sends news (a presence statement, broadcast or leave this
// broker has just made or first heard of) straight to GossipNodes random
// alive brokers, one UDP packet each, besides queueing it for gossip.
// Every broker that hears news does the same, so it spreads in a few
// network hops instead of a few gossip ticks (LAN: 200 ms each); the gossip
// queue's retransmissions make up for lost packets.
func (c *Cluster) pushLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-c.push:
			for _, a := range c.pushTargets(c.mlConf.GossipNodes) {
				if err := c.ml.SendToAddress(a, msg); err != nil {
					c.log.Debug("push failed", "to", a.Name, "err", err)
				}
			}
		}
	}
}

// pushTargets picks up to k random alive brokers other than this one.
func (c *Cluster) pushTargets(k int) []memberlist.Address {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := make([]memberlist.Address, 0, len(c.members))
	for name, m := range c.members {
		if name != c.name && m.State == StateAlive {
			all = append(all, memberlist.Address{Addr: m.Addr, Name: name})
		}
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[:min(k, len(all))]
}

// pushLocked hands news to pushLoop, unless it is full.
func (c *Cluster) pushLocked(msg []byte) {
	select {
	case c.push <- msg:
	default:
	}
}

// dispatchLoop hands received broadcasts to their handlers.
func (c *Cluster) dispatchLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-c.inbox:
			c.mu.Lock()
			f := c.handlers[in.topic]
			c.mu.Unlock()
			if f != nil {
				f(in.from, in.payload)
			}
		}
	}
}
