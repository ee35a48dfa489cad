package reach

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Why a machine is away is part of the overlay: the agent says it before
// it goes (wire.Leaving on its last heartbeat), or the broker that held
// its bridge says "lost" when the stream fell silent or broke. Either way
// the broker writes a note, which the cluster spreads to every broker
// (NoteBook), so each card shows the same reason within a gossip round.
// When the machine comes back, its new broker writes a note saying so,
// with what the agent told of its time away (wire.Returned) and whether
// its network blocks UDP. Notes live in memory only: a reason is a
// network signal, never a health verdict, and never part of readiness.

// NoteBook keeps machines' notes: the cluster's, which spreads them to
// every broker, or a map on a broker that runs alone.
type NoteBook interface {
	// SetNote records this broker's note about machine id, made at at.
	SetNote(id string, at time.Time, body []byte)
	// Note returns the newest note any broker made about id.
	Note(id string) (at time.Time, body []byte, ok bool)
}

// maxNote bounds an encoded note: the cluster's limit (cluster.MaxNote).
const maxNote = 512

// awayNote is a note's body.
type awayNote struct {
	// Reason is why the machine went away (a wire.Away constant); empty
	// in the note its broker writes when it comes online.
	Reason string `json:"reason,omitempty"`
	// Since is when it went away, or when its bridge opened.
	Since  time.Time  `json:"since"`
	Detail string     `json:"detail,omitempty"`
	Back   *time.Time `json:"back,omitempty"`
	// While online: what the agent said of its time away, and since when
	// it has found UDP blocked.
	Returned   *wire.Returned `json:"returned,omitempty"`
	UDPBlocked *time.Time     `json:"udp_blocked,omitempty"`
}

// encode returns n's body, dropping the least useful text until it fits
// maxNote (two 200-byte details escaped as JSON could pass it).
func (n awayNote) encode() []byte {
	for {
		b, err := json.Marshal(n)
		if err == nil && len(b) <= maxNote {
			return b
		}
		switch {
		case n.Returned != nil && n.Returned.Detail != "":
			r := *n.Returned
			r.Detail = ""
			n.Returned = &r
		case n.Detail != "":
			n.Detail = ""
		default:
			n.Returned = nil // cannot be reached: what is left is under 200 bytes
			b, _ = json.Marshal(n)
			return b
		}
	}
}

func decodeNote(b []byte) (awayNote, bool) {
	var n awayNote
	if err := json.Unmarshal(b, &n); err != nil {
		return awayNote{}, false
	}
	return n, true
}

// localNotes is the NoteBook of a broker that runs alone. It holds a note
// for each machine that opened a presence stream here (enrolled and
// authenticated), so it is bounded by the fleet.
type localNotes struct {
	mu    sync.Mutex
	notes map[string]localNote // mu guards
}

type localNote struct {
	at   time.Time
	body []byte
}

func (n *localNotes) SetNote(id string, at time.Time, body []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.notes == nil {
		n.notes = map[string]localNote{}
	}
	if cur, ok := n.notes[id]; ok && cur.at.After(at) {
		return
	}
	n.notes[id] = localNote{at: at, body: body}
}

func (n *localNotes) Note(id string) (time.Time, []byte, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cur, ok := n.notes[id]
	return cur.at, cur.body, ok
}

// note returns the newest note about id.
func (l *Layer) note(id string) (awayNote, bool) {
	_, body, ok := l.notes.Note(id)
	if !ok {
		return awayNote{}, false
	}
	n, ok := decodeNote(body)
	if !ok {
		l.cfg.Logger.Warn("an undecodable away note ignored", "id", id, "len", len(body))
	}
	return n, ok
}

// setNote records n about id, stamped now, or just after the newest note
// this broker knows when that one is stamped later (its broker's clock
// runs ahead of this one's): a note always replaces the one it follows.
func (l *Layer) setNote(id string, n awayNote) {
	at := l.cfg.Now()
	if cur, _, ok := l.notes.Note(id); ok && !at.After(cur) {
		at = cur.Add(time.Millisecond)
	}
	l.notes.SetNote(id, at, n.encode())
}

// arrived writes the note of a machine whose bridge opened here at since.
func (l *Layer) arrived(id string, since time.Time, hello *wire.Hello) {
	n := awayNote{Since: since, Returned: hello.Returned}
	if r, ok := l.table.reach(id, l.cfg.Name); ok {
		n.UDPBlocked = r.UDPBlockedSince
	}
	l.setNote(id, n)
}

// departed writes the note of a machine whose presence stream here ended
// for why (an end* constant), r being its row.
func (l *Layer) departed(id string, r row, why string, now time.Time) {
	n := awayNote{Reason: wire.AwayLost, Since: r.lastBeat}
	switch {
	case r.leaving != nil:
		n.Reason, n.Since, n.Detail, n.Back = r.leaving.Reason, now, r.leaving.Detail, r.leaving.ExpectedBack
	case why == endClosed:
		// An agent before 0.4.0 closes cleanly only when it is stopped.
		n.Reason, n.Since, n.Detail = wire.AwayStopped, now, "the agent closed its bridge without a notice"
	case why == endMissed:
		n.Detail = "heartbeats stopped without a notice"
	case why == endBad:
		n.Detail = "a malformed heartbeat"
	default:
		n.Detail = "the bridge broke without a notice"
	}
	if n.Reason == wire.AwayLost {
		if broker, since, ok := l.elsewhere(id); ok && since.After(r.since) {
			// The agent moved to another broker before this one noticed
			// the old bridge was gone: nothing was lost.
			l.cfg.Logger.Debug("no lost note: the machine is online elsewhere", "id", id, "broker", broker)
			return
		}
	}
	l.setNote(id, n)
}

// QuietCheckIn records a check-in id made in quiet mode (on a metered
// connection, with no bridge), with its next one due at next: the note
// says quiet, expected back then. An agent that started on a metered
// connection never had a bridge to say so on; its check-ins do. It does
// nothing while the machine is online.
func (l *Layer) QuietCheckIn(id string, at, next time.Time) {
	if l.Online(id) {
		return
	}
	if _, _, ok := l.elsewhere(id); ok {
		return
	}
	n, ok := l.note(id)
	if !ok || n.Reason != wire.AwayQuiet {
		n = awayNote{Reason: wire.AwayQuiet, Since: at}
	}
	n.Back = &next
	n.Detail = "on a metered connection; last quiet check-in " + at.UTC().Format(time.RFC3339)
	l.setNote(id, n)
	l.changed()
}

// annotate adds to r, id's reachability, what the notes say.
func (l *Layer) annotate(id string, r *wire.Reachability) {
	n, ok := l.note(id)
	switch {
	case r.Online:
		if ok && n.Reason == "" && r.Since != nil && r.Returned == nil && r.UDPBlockedSince == nil &&
			n.Since.Sub(*r.Since).Abs() < time.Second {
			// Online through another broker: its arrival note.
			r.Returned, r.UDPBlockedSince = n.Returned, n.UDPBlocked
		}
		r.Detail = onlineDetail(r)
	case ok && n.Reason != "":
		since := n.Since
		r.OfflineReason, r.OfflineSince, r.Detail, r.ExpectedBack = n.Reason, &since, n.Detail, n.Back
	}
}

// onlineDetail is the detail line of an online machine.
func onlineDetail(r *wire.Reachability) string {
	var s string
	if ret := r.Returned; ret != nil {
		s = ret.Phrase(ret.At.UTC().Format(time.RFC3339))
	}
	if r.UDPBlockedSince != nil {
		if s != "" {
			s += "; "
		}
		fell := r.Transport
		if fell == "" {
			fell = "TCP or WebSocket"
		}
		s += "UDP blocked since " + r.UDPBlockedSince.UTC().Format(time.RFC3339) + ": the bridge fell back to " + fell
	}
	return s
}
