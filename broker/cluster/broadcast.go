package cluster

import (
	"fmt"
	"math/bits"

	"github.com/hashicorp/memberlist"
)

// Broadcast gossips payload under topic to every other broker, where the
// handler registered with OnMessage for topic receives it; it is not
// delivered locally. It is meant for small control messages ("record X
// changed, now version V"): len(topic)+len(payload) must not exceed
// MaxBroadcast, topic must be 1–64 bytes. Delivery is best effort and
// usually within a few gossip intervals; every receiver passes the message
// on (duplicates are dropped), but a broker that is partitioned away
// during the retransmit window misses it, so receivers must tolerate gaps
// (push/pull digests repair them).
func (c *Cluster) Broadcast(topic string, payload []byte) error {
	if len(topic) == 0 || len(topic) > maxTopic {
		return fmt.Errorf("cluster: broadcast: topic of %d bytes, want 1–%d", len(topic), maxTopic)
	}
	if n := len(topic) + len(payload); n > MaxBroadcast {
		return fmt.Errorf("cluster: broadcast %q: %w: %d bytes, limit %d", topic, ErrTooLarge, n, MaxBroadcast)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("cluster: broadcast: %w", ErrClosed)
	}
	c.msgSeq++
	msg := userMsg{origin: c.name, inc: c.inc, seq: c.msgSeq, topic: topic, payload: payload}.encode()
	c.queue.QueueBroadcast(&uniqueBroadcast{msg: msg})
	c.pushLocked(msg)
	return nil
}

// OnMessage registers f for broadcasts on topic, replacing any handler
// before it; nil removes it. Handlers run one at a time on a single
// goroutine, in arrival order, and must not block for long: while one
// runs, up to 1024 further messages queue and then newer ones are dropped
// (and logged). from is the sending broker's node name; payload is the
// handler's to keep.
func (c *Cluster) OnMessage(topic string, f func(from string, payload []byte)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f == nil {
		delete(c.handlers, topic)
		return
	}
	c.handlers[topic] = f
}

// inbound is a received broadcast waiting for its handler.
type inbound struct {
	from, topic string
	payload     []byte
}

// receiveUserLocked handles a gossiped broadcast: drop it if seen, else
// pass it on and hand it to the dispatcher.
func (c *Cluster) receiveUserLocked(m userMsg, raw []byte) {
	if m.origin == c.name {
		return
	}
	w := c.seen[m.origin]
	if w == nil {
		w = &window{}
		c.seen[m.origin] = w
	}
	if !w.first(m.inc, m.seq) {
		return
	}
	c.queue.QueueBroadcast(&uniqueBroadcast{msg: raw})
	c.pushLocked(raw)
	in := inbound{from: m.origin, topic: m.topic, payload: append([]byte(nil), m.payload...)}
	select {
	case c.inbox <- in:
	default:
		c.dropped++
	}
}

// window suppresses duplicate broadcasts from one origin: it remembers
// the highest sequence number seen and which of the 256 before it were
// seen. Older messages count as seen, so a message delayed by more than
// 256 newer ones from the same origin is dropped.
type window struct {
	inc  uint64
	top  uint64
	seen [4]uint64 // bit i: top-i seen
}

const windowSize = 256

// first reports whether (inc, seq) is new, and records it.
func (w *window) first(inc, seq uint64) bool {
	switch {
	case inc < w.inc:
		return false
	case inc > w.inc:
		*w = window{inc: inc}
	}
	if seq > w.top {
		w.shift(seq - w.top)
		w.top = seq
		w.seen[0] |= 1
		return true
	}
	d := w.top - seq
	if d >= windowSize {
		return false
	}
	word, bit := d/64, uint64(1)<<(d%64)
	if w.seen[word]&bit != 0 {
		return false
	}
	w.seen[word] |= bit
	return true
}

// shift ages the window by n positions.
func (w *window) shift(n uint64) {
	if n >= windowSize {
		w.seen = [4]uint64{}
		return
	}
	words, sh := n/64, n%64
	for i := 3; i >= 0; i-- {
		var v uint64
		if j := i - int(words); j >= 0 {
			v = w.seen[j] << sh
			if sh > 0 && j > 0 {
				v |= w.seen[j-1] >> (64 - sh)
			}
		}
		w.seen[i] = v
	}
}

// count is the number of sequence numbers marked seen, for tests.
func (w *window) count() (n int) {
	for _, v := range w.seen {
		n += bits.OnesCount64(v)
	}
	return n
}

// namedBroadcast is a queued presence statement or leave announcement.
// Its name is origin and machine, so a newer statement about the same
// machine replaces an older one still waiting in the queue. done, if not
// nil, is closed when the queue is finished with it.
type namedBroadcast struct {
	name string
	msg  []byte
	done chan struct{}
}

var _ memberlist.NamedBroadcast = (*namedBroadcast)(nil)

func (b *namedBroadcast) Name() string    { return b.name }
func (b *namedBroadcast) Message() []byte { return b.msg }

// Finished is called with the queue's lock held, so calls are serialised.
func (b *namedBroadcast) Finished() {
	if b.done == nil {
		return
	}
	select {
	case <-b.done:
	default:
		close(b.done)
	}
}
func (b *namedBroadcast) Invalidates(o memberlist.Broadcast) bool {
	nb, ok := o.(memberlist.NamedBroadcast)
	return ok && nb.Name() == b.name
}

// uniqueBroadcast is a queued Broadcast message; none replaces another.
type uniqueBroadcast struct{ msg []byte }

var _ memberlist.UniqueBroadcast = (*uniqueBroadcast)(nil)

func (b *uniqueBroadcast) UniqueBroadcast()                      {}
func (b *uniqueBroadcast) Message() []byte                       { return b.msg }
func (b *uniqueBroadcast) Finished()                             {}
func (b *uniqueBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
