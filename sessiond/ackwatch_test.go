package sessiond

import (
	"errors"
	"testing"
	"time"
)

var at0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

// TestAckWatchSilentBroker: at the default 5 s heartbeat, a broker that
// answers is never silent; one that stops is silent two seconds after the
// first heartbeat it leaves unanswered, not three intervals later.
func TestAckWatchSilentBroker(t *testing.T) {
	w := ackWatch{every: 5 * time.Second}
	now := at0
	for seq := uint64(1); seq <= 10; seq++ {
		w.sent(seq, now)
		w.acked(seq, now.Add(3*time.Millisecond))
		if err := w.silent(now.Add(4 * time.Second)); err != nil {
			t.Fatalf("beat %d answered in 3 ms: %v", seq, err)
		}
		now = now.Add(5 * time.Second)
	}
	if w.srtt != 3*time.Millisecond || len(w.pending) != 0 {
		t.Fatalf("srtt %v, %d pending; want 3ms and none", w.srtt, len(w.pending))
	}
	w.sent(11, now) // the broker died after its last ack
	if d := w.until(now); d != minAckWait {
		t.Fatalf("until = %v, want the ack wait %v", d, minAckWait)
	}
	if err := w.silent(now.Add(minAckWait - time.Millisecond)); err != nil {
		t.Fatalf("silent before the ack wait: %v", err)
	}
	err := w.silent(now.Add(minAckWait))
	if !errors.Is(err, errBrokerSilent) {
		t.Fatalf("after the ack wait: %v, want errBrokerSilent", err)
	}
	t.Log(err)
}

// TestAckWatchWait: the wait follows a slow link's round trip, and never
// exceeds the three intervals the broker itself waits for a silent agent.
func TestAckWatchWait(t *testing.T) {
	tests := []struct {
		desc  string
		every time.Duration
		rtts  []time.Duration
		want  time.Duration
	}{
		{"default, no ack yet", 5 * time.Second, nil, 2 * time.Second},
		{"default, fast link", 5 * time.Second, []time.Duration{time.Millisecond, 2 * time.Millisecond}, 2 * time.Second},
		{"default, 600 ms satellite link", 5 * time.Second, []time.Duration{600 * time.Millisecond}, 4800 * time.Millisecond},
		{"default, a link slower than anything usable", 5 * time.Second, []time.Duration{4 * time.Second}, 15 * time.Second},
		{"test heartbeat 100 ms", 100 * time.Millisecond, nil, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			w := ackWatch{every: tt.every}
			for i, rtt := range tt.rtts {
				w.sent(uint64(i+1), at0)
				w.acked(uint64(i+1), at0.Add(rtt))
			}
			if got := w.wait(); got != tt.want {
				t.Errorf("wait = %v, want %v (srtt %v)", got, tt.want, w.srtt)
			}
		})
	}
}

// TestAckWatchInOrder: an ack answers its heartbeat and every earlier one;
// the overdue one is the oldest still unanswered.
func TestAckWatchInOrder(t *testing.T) {
	w := ackWatch{every: time.Second}
	for seq := uint64(1); seq <= 3; seq++ {
		w.sent(seq, at0.Add(time.Duration(seq)*time.Second))
	}
	w.acked(2, at0.Add(2100*time.Millisecond))
	if len(w.pending) != 1 || w.pending[0].seq != 3 {
		t.Fatalf("pending %+v, want only 3", w.pending)
	}
	if w.srtt != 100*time.Millisecond {
		t.Errorf("srtt %v, want 100ms from the ack of 2", w.srtt)
	}
	w.acked(1, at0.Add(2200*time.Millisecond)) // late, out of order: nothing to do
	if d := w.until(at0.Add(3 * time.Second)); d != w.wait() {
		t.Errorf("until = %v, want %v from heartbeat 3", d, w.wait())
	}
	w.acked(3, at0.Add(3100*time.Millisecond))
	if err := w.silent(at0.Add(time.Hour)); err != nil || len(w.pending) != 0 {
		t.Errorf("all answered, yet %v, %d pending", err, len(w.pending))
	}
	if d := w.until(at0); d <= w.every {
		t.Errorf("nothing pending: until = %v, want past the next beat", d)
	}
}
