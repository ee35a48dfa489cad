package session

import (
	"github.com/libp2p/go-libp2p/core/peer"
	"sync"
	"time"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/peer/wire"
)

// grantMemory remembers which machine each recent session was granted
// to, so an agent can only file transcripts of its own sessions, and
// strangers none at all.
type grantMemory struct {
	mu       sync.Mutex
	m        map[string]string // mu guards all following fields; session → machine
	order    []string          // sessions, oldest first
	machines map[string]int    // machine → sessions of it remembered
}

// grantsKept bounds the sessions remembered.
const grantsKept = 100_000

func (g *grantMemory) add(session, machine string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m, g.machines = map[string]string{}, map[string]int{}
	}
	if old, ok := g.m[session]; ok {
		g.forgetLocked(old)
	}
	g.m[session] = machine
	g.machines[machine]++
	g.order = append(g.order, session)
	if len(g.order) > grantsKept {
		if old, ok := g.m[g.order[0]]; ok {
			g.forgetLocked(old)
			delete(g.m, g.order[0])
		}
		g.order = g.order[1:]
	}
}

// forgetLocked counts one session of machine less.
func (g *grantMemory) forgetLocked(machine string) {
	if g.machines[machine]--; g.machines[machine] <= 0 {
		delete(g.machines, machine)
	}
}

func (g *grantMemory) grantedTo(session, machine string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[session] == machine
}

// any reports whether a session was granted to machine recently.
func (g *grantMemory) any(machine string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.machines[machine] > 0
}

// MayFileTranscript admits a transcript stream before its request is
// read: only a machine that was granted a session here recently may file
// one. The request may be 22 MB; a key that has no session costs nothing.
func (s *Service) MayFileTranscript(remote peer.ID) error {
	if !s.grants.any(remote.String()) {
		return wire.Errorf(wire.CodeForbidden, "no session was granted to this machine here recently")
	}
	return nil
}

// TranscriptSpec is how transcript streams open: a transcript is base64
// in JSON, so the request may be a third larger than MaxTranscript.
var TranscriptSpec = serve.Spec{Name: "transcript", Deadline: time.Minute,
	MaxRequest: wire.MaxTranscript/3*4 + 64<<10,
	Reply:      func() wire.Refusable { return &wire.Reply{} }}

// ServeTranscript stores a transcript an agent files after a session
// (wire.ProtoTranscript).
func (s *Service) ServeTranscript(st *serve.Stream, t *wire.Transcript) (any, error) {
	id := st.Remote.String()
	switch {
	case len(t.Cast) > wire.MaxTranscript:
		return nil, wire.Errorf(wire.CodeTooLarge, "transcript over 16 MiB")
	case !s.grants.grantedTo(t.Session, id):
		return nil, wire.Errorf(wire.CodeForbidden, "no session %s was granted to this machine here", t.Session)
	}
	if _, ok := s.deps.Store.Machine(id); !ok {
		return nil, wire.Errorf(wire.CodeUnauthorized, "not an enrolled machine")
	}
	t.Machine = id // an agent can only write its own records
	if err := s.deps.Store.PutTranscript(*t); err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	return &wire.Reply{}, nil
}

// Transcripts answers OpTranscript for the machines t may see.
func (s *Service) Transcripts(t *wire.Technician, a *wire.TranscriptArgs) ([]wire.Transcript, *wire.Error) {
	ts, err := s.deps.Store.Transcripts(a.Session)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	out := []wire.Transcript{}
	for _, x := range ts {
		if m, ok := s.deps.Store.Machine(x.Machine); ok && scope.Visible(t, m.Client) {
			x.Machine = m.Client + "/" + m.Name
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil, wire.Errorf(wire.CodeNotFound, "no transcript of session %s among the machines you can see (on this broker)", a.Session)
	}
	return out, nil
}
