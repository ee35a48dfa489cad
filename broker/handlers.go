package broker

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// handle registers the stream handlers.
func (b *Broker) handle() {
	b.host.SetStreamHandler(wire.ProtoEnroll, b.handleEnroll)
	b.host.SetStreamHandler(wire.ProtoCheckIn, b.handleCheckIn)
	b.host.SetStreamHandler(wire.ProtoPresence, b.handlePresence)
	b.host.SetStreamHandler(wire.ProtoLogin, b.handleLogin)
	b.host.SetStreamHandler(wire.ProtoTech, b.handleTech)
	b.host.SetStreamHandler(ProtoReplicate, b.handleReplicate)
	b.host.SetStreamHandler(wire.ProtoRelay, b.handleRelay)
	b.host.SetStreamHandler(wire.ProtoSessionStatus, b.handleSessionStatus)
	b.host.SetStreamHandler(wire.ProtoTranscript, b.handleTranscript)
}

// refuse logs a refused request and sends reply with the error set. The
// store has not been touched on any path that calls refuse.
func (b *Broker) refuse(s network.Stream, what, remote, code, msg string, reply any) {
	b.log.Warn("refused", "request", what, "peer", remote, "code", code, "reason", msg)
	b.metrics.refused.WithLabelValues(what, code).Inc()
	e := &wire.Error{Code: code, Message: msg}
	switch r := reply.(type) {
	case *wire.EnrollReply:
		r.Error = e
	case *wire.CheckInAck:
		r.Error = e
	case *wire.HelloReply:
		r.Error = e
	case *wire.LoginReply:
		r.Error = e
	case *wire.Reply:
		r.Error = e
	case *wire.RelayReady:
		r.Error = e
	case *replReply:
		r.Error = e
	}
	s.SetWriteDeadline(time.Now().Add(5 * time.Second))
	wire.Write(s, reply)
	s.CloseWrite()
}

// readCode maps a decode error to an error code.
func readCode(err error) string {
	if errors.Is(err, wire.ErrTooLarge) {
		return wire.CodeTooLarge
	}
	return wire.CodeBadRequest
}

func (b *Broker) handleEnroll(s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer().String()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	var req wire.Enroll
	if err := wire.NewReader(s).Read(wire.MaxControl, &req); err != nil {
		b.refuse(s, "enroll", remote, readCode(err), err.Error(), &wire.EnrollReply{})
		return
	}
	if req.BrokerID != b.ID() && !(b.cluster != nil && b.isMember(req.BrokerID)) {
		b.refuse(s, "enroll", remote, wire.CodeTokenInvalid,
			"the token was issued by broker "+req.BrokerID+"; this is broker "+b.ID(), &wire.EnrollReply{})
		return
	}
	m, err := b.store.Enroll(store.EnrollRequest{TokenHash: wire.HashSecret(req.Secret), MachineID: remote,
		Name: req.Name, Hostname: req.Hostname, Now: b.cfg.Now()})
	if err != nil {
		code := wire.CodeInternal
		switch {
		case errors.Is(err, store.ErrTokenUnknown), errors.Is(err, store.ErrTokenExpired), errors.Is(err, store.ErrTokenUsedUp):
			code = wire.CodeTokenInvalid
		case errors.Is(err, store.ErrNameTaken), errors.Is(err, store.ErrExists):
			code = wire.CodeConflict
		}
		b.metrics.enrolls.WithLabelValues(code).Inc()
		b.refuse(s, "enroll", remote, code, err.Error(), &wire.EnrollReply{})
		return
	}
	b.metrics.enrolls.WithLabelValues("ok").Inc()
	keys := []store.Key{{Kind: store.KindMachine, ID: m.ID}, {Kind: store.KindToken, ID: wire.HashSecret(req.Secret)}}
	b.copyToPeer(context.Background(), keys...)
	b.replicated(keys...)
	b.log.Info("machine enrolled", "machine", m.Name, "client", m.Client, "id", m.ID)
	wire.Write(s, &wire.EnrollReply{MachineID: m.ID, Name: m.Name, Client: m.Client, Broker: b.Info()})
}

func (b *Broker) handleCheckIn(s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer().String()
	s.SetDeadline(time.Now().Add(time.Minute))
	var ci wire.CheckIn
	if err := wire.NewReader(s).Read(b.cfg.MaxSnapshot, &ci); err != nil {
		b.metrics.checkins.WithLabelValues(readCode(err)).Inc()
		b.refuse(s, "checkin", remote, readCode(err), err.Error(), &wire.CheckInAck{})
		return
	}
	if ci.MachineID != remote {
		b.metrics.checkins.WithLabelValues(wire.CodeForbidden).Inc()
		b.refuse(s, "checkin", remote, wire.CodeForbidden,
			"agent "+remote+" may not write the record of machine "+ci.MachineID, &wire.CheckInAck{})
		return
	}
	res, err := b.store.CheckIn(&ci, b.cfg.Now())
	if err != nil {
		code := wire.CodeInternal
		switch {
		case errors.Is(err, store.ErrUnknownMachine):
			code = wire.CodeUnauthorized
		case errors.Is(err, store.ErrSequence):
			code = wire.CodeConflict
		}
		b.metrics.checkins.WithLabelValues(code).Inc()
		b.refuse(s, "checkin", remote, code, err.Error(), &wire.CheckInAck{Seq: res.StoredSeq})
		return
	}
	b.metrics.checkins.WithLabelValues("ok").Inc()
	if !res.Duplicate {
		key := store.Key{Kind: store.KindMachine, ID: remote}
		b.copyToPeer(context.Background(), key)
		b.replicated(key)
	}
	// Committed: only now is the check-in acknowledged.
	wire.Write(s, &wire.CheckInAck{Seq: ci.Seq, Duplicate: res.Duplicate, StoredAt: res.StoredAt})
	b.queue.kick() // queued work waits for a fresh check-in
}

func (b *Broker) handleLogin(s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer().String()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	var req wire.Login
	if err := wire.NewReader(s).Read(wire.MaxControl, &req); err != nil {
		b.refuse(s, "login", remote, readCode(err), err.Error(), &wire.LoginReply{})
		return
	}
	tok, err := wire.ParseToken(wire.KindLogin, req.Token)
	if err != nil {
		b.refuse(s, "login", remote, wire.CodeBadRequest, err.Error(), &wire.LoginReply{})
		return
	}
	if tok.Broker.PeerID != b.ID() && !(b.cluster != nil && b.isMember(tok.Broker.PeerID)) {
		b.refuse(s, "login", remote, wire.CodeTokenInvalid,
			"the token was issued by broker "+tok.Broker.PeerID+"; this is broker "+b.ID(), &wire.LoginReply{})
		return
	}
	hash := wire.HashSecret(tok.Secret)
	admin := hash == b.adminHash
	t, err := b.store.Login(hash, remote, admin, b.cfg.Now())
	if err != nil {
		code := wire.CodeInternal
		switch {
		case errors.Is(err, store.ErrTokenUnknown), errors.Is(err, store.ErrTokenExpired):
			code = wire.CodeTokenInvalid
		case errors.Is(err, store.ErrExists):
			code = wire.CodeConflict
		}
		b.refuse(s, "login", remote, code, "login refused: "+err.Error(), &wire.LoginReply{})
		return
	}
	b.replicated(store.Key{Kind: store.KindTechnician, ID: t.Name})
	b.log.Info("technician logged in", "technician", t.Name, "key", remote, "admin", t.Admin)
	wire.Write(s, &wire.LoginReply{Technician: t, Broker: b.Info()})
}
