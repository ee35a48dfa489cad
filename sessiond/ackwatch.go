package sessiond

import (
	"errors"
	"fmt"
	"time"
)

// errBrokerSilent ends a bridge whose broker stopped answering heartbeats.
var errBrokerSilent = errors.New("broker stopped answering heartbeats")

// A broker that dies without closing its connections (killed, its host
// lost, a cable cut) says nothing: the agent learns of it only when a
// heartbeat goes unanswered. The broker answers each heartbeat at once,
// so the agent waits for an ack a few round trips, not a few heartbeat
// intervals: when the ack of a heartbeat is later than the ack wait, the
// broker is deemed silent and the agent moves to the next broker. At the
// default 5 s heartbeat a dead broker is noticed within 5 s + 2 s, where
// waiting for three intervals to pass took 15 to 20 s.
//
// The ack wait is minAckWait, or ackWaitRTTs smoothed round trips on a
// slow link, so a few lost packets, which QUIC resends within a round trip
// or two, do not move a whole fleet; and at most three intervals, the
// broker's own bound on a silent agent (so test settings with millisecond
// heartbeats notice as fast as before).
const (
	minAckWait  = 2 * time.Second
	ackWaitRTTs = 8
)

// ackWatch tracks the heartbeats a broker has not acknowledged yet. It is
// owned by the bridge goroutine.
type ackWatch struct {
	every   time.Duration // the heartbeat interval
	srtt    time.Duration // smoothed ack round trip; zero until the first ack
	pending []sentBeat    // unacknowledged heartbeats, oldest first
}

type sentBeat struct {
	seq uint64
	at  time.Time
}

// sent records heartbeat seq, sent at at. The list stays short: once its
// oldest entry is older than the ack wait, the bridge ends.
func (w *ackWatch) sent(seq uint64, at time.Time) {
	w.pending = append(w.pending, sentBeat{seq, at})
}

// acked records the ack of seq, received at at. A broker answers in order,
// so it acknowledges every earlier heartbeat too.
func (w *ackWatch) acked(seq uint64, at time.Time) {
	n := 0
	for n < len(w.pending) && w.pending[n].seq <= seq {
		if w.pending[n].seq == seq {
			w.sample(at.Sub(w.pending[n].at))
		}
		n++
	}
	w.pending = append(w.pending[:0], w.pending[n:]...)
}

// sample folds one round trip into the smoothed one (RFC 6298's gain).
func (w *ackWatch) sample(rtt time.Duration) {
	if w.srtt == 0 {
		w.srtt = rtt
		return
	}
	w.srtt += (rtt - w.srtt) / 8
}

// wait is how long an ack may take before the broker is deemed silent.
func (w *ackWatch) wait() time.Duration {
	return min(3*w.every, max(minAckWait, ackWaitRTTs*w.srtt))
}

// until returns how long from now the oldest unacknowledged heartbeat
// becomes overdue: when to call silent next.
func (w *ackWatch) until(now time.Time) time.Duration {
	if len(w.pending) == 0 {
		return w.every + w.wait() // nothing pending: the next beat re-arms it
	}
	return max(0, w.pending[0].at.Add(w.wait()).Sub(now))
}

// silent returns errBrokerSilent, with the overdue heartbeat, once the
// oldest unacknowledged heartbeat has waited longer than the ack wait.
func (w *ackWatch) silent(now time.Time) error {
	if len(w.pending) == 0 || now.Sub(w.pending[0].at) < w.wait() {
		return nil
	}
	return fmt.Errorf("%w: heartbeat %d unacknowledged after %v", errBrokerSilent,
		w.pending[0].seq, now.Sub(w.pending[0].at).Round(time.Millisecond))
}
