package broker

import (
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/enrol"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/reach"
	"github.com/readymesh/readymesh/broker/relay"
	"github.com/readymesh/readymesh/broker/replicate"
	"github.com/readymesh/readymesh/broker/session"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// handle registers the broker's stream protocols, each with the room that
// serves it.
func (b *Broker) handle() {
	h, srv := b.host, b.serve
	h.SetStreamHandler(wire.ProtoEnroll, serve.Handle(srv, enrol.EnrollSpec, b.admit.ServeEnroll))
	h.SetStreamHandler(wire.ProtoLogin, serve.Handle(srv, enrol.LoginSpec, b.admit.ServeLogin))
	h.SetStreamHandler(wire.ProtoCheckIn, serve.Handle(srv, admit(b.checkins.Spec(), b.machine), b.checkins.Serve))
	h.SetStreamHandler(wire.ProtoPresence, serve.Handle(srv, admit(reach.Spec, b.machine), b.reach.ServePresence))
	h.SetStreamHandler(wire.ProtoTech, serve.Handle(srv, admit(techSpec, b.technician), b.ops.serve))
	h.SetStreamHandler(replicate.Proto, serve.Handle(srv, b.repl.Spec(), b.repl.Serve))
	h.SetStreamHandler(wire.ProtoRelay, serve.Handle(srv, admit(relay.Spec, b.machineOrTechnician), b.relay.Serve))
	h.SetStreamHandler(wire.ProtoSessionStatus, serve.Handle(srv, admit(session.StatusSpec, b.machine), b.sessions.ServeStatus))
	h.SetStreamHandler(wire.ProtoTranscript, serve.Handle(srv, admit(session.TranscriptSpec, b.sessions.MayFileTranscript),
		b.sessions.ServeTranscript))
	b.handleReleases(srv)
	b.host.Network().Notify(b.techs)
}

// Every protocol but enrolment and login (which strangers use to become
// known, within wire.MaxControl) and replication (which admits brokers of
// the cluster itself) admits a caller by its authenticated key before it
// reads a byte of the request: a key that is not enrolled here costs the
// broker no buffer, no map entry and no metric label.
var (
	errNotMachine    = wire.Errorf(wire.CodeUnauthorized, "this key is not enrolled on this broker as a machine")
	errNotTechnician = wire.Errorf(wire.CodeUnauthorized, "this key is not a technician of this broker; log in with meshctl login")
)

// admit returns spec with its Admit set to who.
func admit(spec serve.Spec, who func(peer.ID) error) serve.Spec {
	spec.Admit = who
	return spec
}

// machine admits enrolled machines. A removed machine is told who
// removed it and when.
func (b *Broker) machine(remote peer.ID) error {
	if _, ok := b.store.Machine(remote.String()); !ok {
		if r, removed := b.store.Removal(remote.String()); removed {
			return wire.Errorf(wire.CodeRemoved, "%s", r.Message())
		}
		return errNotMachine
	}
	return nil
}

// technician admits technicians. A disabled one is told who disabled it
// and when.
func (b *Broker) technician(remote peer.ID) error {
	return technicianRefusal(b.store.TechnicianByKey(remote.String()))
}

// technicianRefusal is the refusal of a technician key whose look-up
// failed with err, or nil.
func technicianRefusal(_ wire.Technician, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrDisabled):
		return wire.Errorf(wire.CodeRevoked, "%v", err)
	}
	return errNotTechnician
}

// machineOrTechnician admits both ends of a relayed session.
func (b *Broker) machineOrTechnician(remote peer.ID) error {
	if b.machine(remote) == nil || b.technician(remote) == nil {
		return nil
	}
	return wire.Errorf(wire.CodeUnauthorized, "this key is neither an enrolled machine nor a technician of this broker")
}
