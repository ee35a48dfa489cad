package cluster

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestBroadcast: a broadcast reaches every other broker's handler exactly
// once, not the sender's; oversized ones are refused.
func TestBroadcast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := newMemLab(t, ProfileLAN).cluster(4)
		var mu sync.Mutex // guards got
		got := map[string][]string{}
		for _, c := range cs {
			c.OnMessage("record", func(from string, p []byte) {
				mu.Lock()
				defer mu.Unlock()
				got[c.LocalName()] = append(got[c.LocalName()], from+":"+string(p))
			})
		}
		for _, p := range []string{"x v1", "x v2", "y v1"} {
			if err := cs[0].Broadcast("record", []byte(p)); err != nil {
				t.Fatal(err)
			}
		}
		big := bytes.Repeat([]byte("z"), MaxBroadcast-len("record"))
		if err := cs[1].Broadcast("record", big); err != nil {
			t.Fatal("largest broadcast refused:", err)
		}
		if err := cs[1].Broadcast("record", append(big, 'z')); !errors.Is(err, ErrTooLarge) {
			t.Errorf("oversized broadcast: %v", err)
		}
		time.Sleep(5 * time.Second) // long past every retransmission
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			n := c.LocalName()
			var fromB0, fromB1 int
			for _, g := range got[n] {
				switch {
				case strings.HasPrefix(g, "b0:"):
					fromB0++
				case strings.HasPrefix(g, "b1:") && len(g) == 3+len(big):
					fromB1++
				default:
					t.Errorf("%s got %.20q", n, g)
				}
			}
			want0, want1 := 3, 1
			if n == "b0" {
				want0 = 0
			}
			if n == "b1" {
				want1 = 0
			}
			if fromB0 != want0 || fromB1 != want1 {
				t.Errorf("%s: %d from b0 (want %d), %d from b1 (want %d)", n, fromB0, want0, fromB1, want1)
			}
		}
	})
}

// TestBroadcastClosed: Broadcast after Close fails with ErrClosed.
func TestBroadcastClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMemLab(t, ProfileLAN).node("solo", nil)
		c.Close()
		if err := c.Broadcast("t", nil); !errors.Is(err, ErrClosed) {
			t.Errorf("got %v", err)
		}
		if err := c.Broadcast("", nil); err == nil {
			t.Error("empty topic accepted")
		}
	})
}

// TestWindow: the duplicate window admits each (inc, seq) once, in any
// order within its span.
func TestWindow(t *testing.T) {
	var w window
	for _, s := range []uint64{5, 3, 4, 1, 2, 70, 6, 300} {
		if !w.first(1, s) {
			t.Fatalf("seq %d refused", s)
		}
	}
	for _, s := range []uint64{5, 3, 70, 300} {
		if w.first(1, s) {
			t.Fatalf("seq %d admitted twice", s)
		}
	}
	if w.first(1, 300-windowSize) {
		t.Error("seq older than the window admitted")
	}
	if !w.first(1, 299) || !w.first(1, 300-windowSize+1) {
		t.Error("seq inside the window refused")
	}
	if w.first(0, 1000) {
		t.Error("older incarnation admitted")
	}
	if !w.first(2, 1) || w.count() != 1 {
		t.Errorf("newer incarnation: count %d", w.count())
	}
	// A long shift keeps the right bits.
	var v window
	v.first(1, 1)
	v.first(1, 130)
	if v.first(1, 1) || v.count() != 2 {
		t.Errorf("after shift by 129: count %d", v.count())
	}
}

// stubHook records digests.
type stubHook struct {
	name string
	mu   sync.Mutex        // guards all following fields
	got  map[string]string // from → digest
}

func (h *stubHook) LocalDigest() []byte { return []byte("digest of " + h.name) }

func (h *stubHook) MergeDigest(from Member, d []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got[from.Name+"/"+from.State+"/"+from.Region] = string(d)
}

func (h *stubHook) digest(from string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got[from]
}

// TestStateHook: digests ride the join's push/pull both ways, with the
// sender known as a member.
func TestStateHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newMemLab(t, ProfileLAN)
		hooks := map[string]*stubHook{}
		withHook := func(c *Config) {
			hooks[c.Name] = &stubHook{name: c.Name, got: map[string]string{}}
			c.StateHook = hooks[c.Name]
		}
		a := l.node("a", nil, withHook)
		b := l.node("b", []string{a.LocalAddr()}, withHook)
		<-b.Joined()
		if d := hooks["b"].digest("a/alive/eu"); d != "digest of a" {
			t.Errorf("b got %q from a", d)
		}
		waitFor(t, time.Second, "a gets b's digest", func() bool { return hooks["a"].digest("b/alive/eu") == "digest of b" })
	})
}
