package store

import (
	"bytes"
	"cmp"
	"encoding/json"
	"maps"
	"slices"

	"github.com/readymesh/readymesh/peer/wire"
)

// The merge rules. Each merge is commutative, associative and idempotent,
// and never lowers what it merges into, so brokers that exchange records
// in any order, any number of times, end with the same records. doc.go
// states the rules; these functions are them.

// winner orders two stamped copies: the later clock is w, the other o.
// Equal clocks are one write, with the same content but for the grow-only
// parts, unless two brokers share a name (a misconfiguration); then the
// greater content wins, so that brokers still agree.
func winner[T any](l, r T, ls, rs Stamp) (w, o T, wst, ost Stamp) {
	c := rs.Clock.Compare(ls.Clock)
	if c == 0 {
		c = bytes.Compare(lwwContent(r), lwwContent(l))
	}
	if c > 0 {
		return r, l, rs, ls
	}
	return l, r, ls, rs
}

// sameLife reports whether two copies belong to one incarnation of a
// record, neither deleted: only then do their grow-only parts merge.
func sameLife(a, b Stamp) bool {
	return a.Born == b.Born && !a.Deleted && !b.Deleted
}

// mergeClient: the later clock wins.
func mergeClient(l, r *ClientRecord) *ClientRecord {
	w, _, _, _ := winner(l, r, l.Stamp, r.Stamp)
	return w
}

// mergeAdmin: the later clock wins.
func mergeAdmin(l, r *AdminRecord) *AdminRecord {
	w, _, _, _ := winner(l, r, l.Stamp, r.Stamp)
	return w
}

// mergeToken: the later clock wins the token's fields; within one
// incarnation each broker's use count is the larger of the two, so uses
// never go back.
func mergeToken(l, r *TokenRecord) *TokenRecord {
	w, o, wst, ost := winner(l, r, l.Stamp, r.Stamp)
	out := *w
	out.Spent = maps.Clone(w.Spent)
	if sameLife(wst, ost) {
		for b, n := range o.Spent {
			if n > out.Spent[b] {
				if out.Spent == nil {
					out.Spent = map[string]int{}
				}
				out.Spent[b] = n
			}
		}
	}
	out.settle()
	return &out
}

// mergeTechnician: the later clock wins the technician's fields; within
// one incarnation keys are the union and a used one-time login is used.
func mergeTechnician(l, r *TechnicianRecord) *TechnicianRecord {
	w, o, wst, ost := winner(l, r, l.Stamp, r.Stamp)
	out := *w
	out.Keys = slices.Clone(w.Keys)
	if sameLife(wst, ost) {
		for _, k := range o.Keys {
			out.Keys = addKey(out.Keys, k)
		}
		out.LoginUsed = w.LoginUsed || o.LoginUsed
	}
	if out.LoginUsed {
		out.LoginHash = ""
	}
	return &out
}

// mergeControl merges two copies of a control record of the same kind.
func mergeControl(l, r any) any {
	switch l := l.(type) {
	case *ClientRecord:
		return mergeClient(l, r.(*ClientRecord))
	case *TokenRecord:
		return mergeToken(l, r.(*TokenRecord))
	case *TechnicianRecord:
		return mergeTechnician(l, r.(*TechnicianRecord))
	case *AdminRecord:
		return mergeAdmin(l, r.(*AdminRecord))
	case *JobRecord:
		return mergeJob(l, r.(*JobRecord))
	case *RemovalRecord:
		return mergeRemoval(l, r.(*RemovalRecord))
	case *ReleaseRecord:
		return mergeRelease(l, r.(*ReleaseRecord))
	case *ReleaseKeyRecord:
		return mergeReleaseKey(l, r.(*ReleaseKeyRecord))
	case *RolloutRecord:
		return mergeRollout(l, r.(*RolloutRecord))
	case *PolicyRecord:
		return mergePolicy(l, r.(*PolicyRecord))
	}
	panic("store: mergeControl: not a control record")
}

// tombstone returns the tombstone of a control record, written at c.
func tombstone(rec any, c Clock) any {
	st := stampOf(rec)
	st.Clock, st.Deleted = c, true
	switch r := rec.(type) {
	case *ClientRecord:
		return &ClientRecord{Name: r.Name, Stamp: st}
	case *TokenRecord:
		return &TokenRecord{Stamp: st}
	case *TechnicianRecord:
		t := &TechnicianRecord{Stamp: st}
		t.Name = r.Name
		return t
	case *AdminRecord:
		return &AdminRecord{Stamp: st}
	case *JobRecord:
		return &JobRecord{ID: r.ID, State: r.State, Stamp: st}
	case *ReleaseRecord:
		return &ReleaseRecord{Version: r.Version, Stamp: st}
	case *RolloutRecord:
		return &RolloutRecord{ID: r.ID, Stamp: st}
	case *PolicyRecord:
		return &PolicyRecord{Scope: r.Scope, Stamp: st}
	}
	panic("store: tombstone: not a control record")
}

// Machines. A machine record has three parts with their own rules:
//
//   - enrolment (name, client, enrolled_at) is written once; if two
//     brokers enrolled one machine differently, the earlier enrolment wins
//     (then the smaller client, then the smaller name);
//   - readiness (the latest check-in, its snapshot and what is copied out
//     of it) is ordered by check-in seq; at equal seq the first commit wins
//     (the earlier commit time), then the smaller snapshot digest. Before
//     the first check-in the host name given at enrolment is the smaller
//     of the two;
//   - last_seen is the later of the two.
//
// History items merge as a set keyed by seq (at equal seq the earlier
// item wins, then the smaller JSON), of which the newest HistoryLimit are
// kept.

// enrolBefore reports whether a's enrolment wins over b's.
func enrolBefore(a, b *Machine) bool {
	return cmp.Or(a.EnrolledAt.Compare(b.EnrolledAt), cmp.Compare(a.Client, b.Client),
		cmp.Compare(a.Name, b.Name)) < 0
}

// readinessWins reports whether r's readiness part wins over l's.
func readinessWins(r, l *Machine) bool {
	rc, lc := r.LastCheckIn, l.LastCheckIn
	switch {
	case rc == nil:
		return false
	case lc == nil:
		return true
	case rc.Seq != lc.Seq:
		return rc.Seq > lc.Seq
	case !rc.At.Equal(lc.At):
		return rc.At.Before(lc.At)
	}
	return rc.Digest < lc.Digest
}

// mergeHistory returns the union of two histories (each newest first, at
// most one item per seq) keeping the newest limit items, newest first,
// and whether it differs from local.
func mergeHistory(local, remote []wire.HistoryItem, limit int) ([]wire.HistoryItem, bool) {
	bySeq := make(map[uint64]wire.HistoryItem, len(local)+len(remote))
	for _, it := range local {
		bySeq[it.Seq] = it
	}
	for _, it := range remote {
		if cur, ok := bySeq[it.Seq]; !ok || itemBefore(it, cur) {
			bySeq[it.Seq] = it
		}
	}
	out := slices.Collect(maps.Values(bySeq))
	slices.SortFunc(out, func(a, b wire.HistoryItem) int { return cmp.Compare(b.Seq, a.Seq) })
	out = out[:min(len(out), limit)]
	if len(out) != len(local) {
		return out, true
	}
	for i := range out {
		if !sameItem(out[i], local[i]) {
			return out, true
		}
	}
	return out, false
}

// itemBefore orders two history items of one seq: the earlier wins, then
// the smaller JSON.
func itemBefore(a, b wire.HistoryItem) bool {
	if !a.At.Equal(b.At) {
		return a.At.Before(b.At)
	}
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	return bytes.Compare(ra, rb) < 0
}

func sameItem(a, b wire.HistoryItem) bool {
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	return bytes.Equal(ra, rb)
}
