package readiness

import (
	"strconv"
	"time"

	"github.com/readymesh/readymesh/broker/store"
)

// reasons formats one sentence per rule in f that applies, in precedence
// order. A ready machine gets an empty, non-nil slice. A machine's
// sentences are written into a reused buffer and cut from one string, so
// together they cost one allocation.
func (e *evaluator) reasons(m *store.Machine, f *facts) []string {
	n := f.count()
	if n == 0 {
		return []string{}
	}
	w := &e.w
	w.reset()
	if f.never {
		w.s("never checked in").end()
	}
	if f.noOS {
		w.s("last check-in reported no operating system").end()
	}
	if f.stale {
		w.s("no check-in for ").span(f.silent).s(" (expected every ").span(f.interval).s(")").end()
	}
	if f.consent != consentOK {
		consentReason(w, f.consent, m)
	}
	if f.behind {
		w.s("agent ").s(m.AgentVersion).s(" is behind ").s(f.newest).end()
	}
	if f.tooMany {
		w.int(len(m.PendingUpdates)).s(" pending updates (limit ").int(e.p.MaxPendingUpdates).s(")").end()
	}
	if f.oldCount > 0 {
		e.oldReason(w, m, f)
	}
	return w.cut(e.list(n))
}

// count returns how many reasons f yields.
func (f *facts) count() int {
	n := 0
	for _, b := range [...]bool{f.never, f.noOS, f.stale, f.consent != consentOK, f.behind, f.tooMany, f.oldCount > 0} {
		if b {
			n++
		}
	}
	return n
}

func consentReason(w *reasonWriter, g consentGap, m *store.Machine) {
	switch g {
	case consentNever:
		w.s("approval required but never given")
	case consentNoExpiry:
		w.s("approval required but its expiry is unknown")
	default:
		w.s("approval expired ").time(*m.Approval.ExpiresAt)
	}
	w.end()
}

func (e *evaluator) oldReason(w *reasonWriter, m *store.Machine, f *facts) {
	id := m.PendingUpdates[f.oldest].ID
	if f.oldCount == 1 {
		w.s("update ").s(id).s(" pending for ").span(f.oldestAge).
			s(" (limit ").span(e.p.MaxPendingAge).s(")").end()
		return
	}
	w.int(int(f.oldCount)).s(" updates pending for more than ").span(e.p.MaxPendingAge).
		s(" (oldest ").s(id).s(", ").span(f.oldestAge).s(")").end()
}

// reasonWriter collects one machine's sentences in a buffer reused from
// machine to machine. Its methods append and return w, so a sentence reads
// as one chain ending in end.
type reasonWriter struct {
	buf  []byte
	ends []int // where each sentence ends in buf
}

func (w *reasonWriter) reset() { w.buf, w.ends = w.buf[:0], w.ends[:0] }

func (w *reasonWriter) end() { w.ends = append(w.ends, len(w.buf)) }

func (w *reasonWriter) s(s string) *reasonWriter {
	w.buf = append(w.buf, s...)
	return w
}

func (w *reasonWriter) int(n int) *reasonWriter {
	w.buf = strconv.AppendInt(w.buf, int64(n), 10)
	return w
}

func (w *reasonWriter) span(d time.Duration) *reasonWriter {
	w.buf = appendSpan(w.buf, d)
	return w
}

func (w *reasonWriter) time(t time.Time) *reasonWriter {
	w.buf = t.UTC().AppendFormat(w.buf, "2006-01-02 15:04 UTC")
	return w
}

// cut makes one string of the buffer and slices the sentences from it into
// list, whose length is the number of sentences.
func (w *reasonWriter) cut(list []string) []string {
	s, start := string(w.buf), 0
	for i, end := range w.ends {
		list[i] = s[start:end]
		start = end
	}
	return list
}

// spanUnits are the units of appendSpan, largest first.
var spanUnits = [...]struct {
	secs int64
	sym  byte
}{{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}}

// appendSpan formats d for a person: its two largest units, truncated,
// with a zero second unit left out: "3h10m", "2d", "45s". Less than a
// second is "0s".
func appendSpan(b []byte, d time.Duration) []byte {
	s := int64(d / time.Second)
	for i, u := range spanUnits {
		if s < u.secs {
			continue
		}
		b = append(strconv.AppendInt(b, s/u.secs, 10), u.sym)
		if i+1 < len(spanUnits) {
			next := spanUnits[i+1]
			if r := s % u.secs / next.secs; r > 0 {
				b = append(strconv.AppendInt(b, r, 10), next.sym)
			}
		}
		return b
	}
	return append(b, "0s"...)
}
