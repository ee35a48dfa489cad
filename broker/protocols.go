package broker

import (
	"github.com/readymesh/readymesh/broker/enrol"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/reach"
	"github.com/readymesh/readymesh/broker/relay"
	"github.com/readymesh/readymesh/broker/replicate"
	"github.com/readymesh/readymesh/broker/session"
	"github.com/readymesh/readymesh/peer/wire"
)

// handle registers the broker's stream protocols, each with the room that
// serves it.
func (b *Broker) handle() {
	h, srv := b.host, b.serve
	h.SetStreamHandler(wire.ProtoEnroll, serve.Handle(srv, enrol.EnrollSpec, b.admit.ServeEnroll))
	h.SetStreamHandler(wire.ProtoLogin, serve.Handle(srv, enrol.LoginSpec, b.admit.ServeLogin))
	h.SetStreamHandler(wire.ProtoCheckIn, serve.Handle(srv, b.checkins.Spec(), b.checkins.Serve))
	h.SetStreamHandler(wire.ProtoPresence, serve.Handle(srv, reach.Spec, b.reach.ServePresence))
	h.SetStreamHandler(wire.ProtoTech, serve.Handle(srv, techSpec, b.ops.serve))
	h.SetStreamHandler(replicate.Proto, serve.Handle(srv, b.repl.Spec(), b.repl.Serve))
	h.SetStreamHandler(wire.ProtoRelay, serve.Handle(srv, relay.Spec, b.relay.Serve))
	h.SetStreamHandler(wire.ProtoSessionStatus, serve.Handle(srv, session.StatusSpec, b.sessions.ServeStatus))
	h.SetStreamHandler(wire.ProtoTranscript, serve.Handle(srv, session.TranscriptSpec, b.sessions.ServeTranscript))
	b.host.Network().Notify(b.techs)
}
