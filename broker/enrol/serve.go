package enrol

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/wire"
)

// EnrollSpec is how enrolment streams open.
var EnrollSpec = serve.Spec{Name: "enroll", Deadline: 30 * time.Second, MaxRequest: wire.MaxControl,
	Reply: func() wire.Refusable { return &wire.EnrollReply{} }}

// ServeEnroll enrols the agent whose key opened the stream
// (wire.ProtoEnroll).
func (a *Admission) ServeEnroll(s *serve.Stream, req *wire.Enroll) (any, error) {
	remote := s.Remote.String()
	if e := wire.CheckVersions(req.Versions, "agent "+req.AgentVersion, "broker "+buildinfo.Version); e != nil {
		return nil, e
	}
	if !a.fromThisCluster(req.BrokerID) {
		return nil, wire.Errorf(wire.CodeTokenInvalid, "the token was issued by broker %s; this is broker %s", req.BrokerID, a.self.ID())
	}
	m, err := a.store.Enroll(store.EnrollRequest{TokenHash: wire.HashSecret(req.Secret), MachineID: remote,
		Name: req.Name, Hostname: req.Hostname, Now: a.cfg.Now()})
	if err != nil {
		code := enrollCode(err)
		a.enrols.WithLabelValues(code).Inc()
		return nil, wire.Errorf(code, "%s", err.Error())
	}
	a.enrols.WithLabelValues("ok").Inc()
	keys := []store.Key{{Kind: store.KindMachine, ID: m.ID}, {Kind: store.KindToken, ID: wire.HashSecret(req.Secret)}}
	a.repl.CopyToPeer(context.Background(), keys...)
	a.repl.Written(keys...)
	a.cfg.Logger.Info("machine enrolled", "machine", m.Name, "client", m.Client, "id", m.ID)
	return &wire.EnrollReply{MachineID: m.ID, Name: m.Name, Client: m.Client, Broker: a.self.Info()}, nil
}

// enrollCode is the code of a refused enrolment.
func enrollCode(err error) string {
	switch {
	case errors.Is(err, store.ErrTokenUnknown), errors.Is(err, store.ErrTokenExpired), errors.Is(err, store.ErrTokenUsedUp):
		return wire.CodeTokenInvalid
	case errors.Is(err, store.ErrNameTaken), errors.Is(err, store.ErrExists):
		return wire.CodeConflict
	case errors.Is(err, store.ErrRemoved):
		return wire.CodeRemoved
	}
	return wire.CodeInternal
}

// LoginSpec is how login streams open.
var LoginSpec = serve.Spec{Name: "login", Deadline: 30 * time.Second, MaxRequest: wire.MaxControl,
	Reply: func() wire.Refusable { return &wire.LoginReply{} }}

// ServeLogin binds the key that opened the stream to the technician its
// login token names (wire.ProtoLogin).
func (a *Admission) ServeLogin(s *serve.Stream, req *wire.Login) (any, error) {
	remote := s.Remote.String()
	if e := wire.CheckVersions(req.Versions, cmp.Or(req.Program, "meshctl"), "broker "+buildinfo.Version); e != nil {
		return nil, e
	}
	tok, err := wire.ParseToken(wire.KindLogin, req.Token)
	if err != nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "%s", err.Error())
	}
	if !a.fromThisCluster(tok.Broker.PeerID) {
		return nil, wire.Errorf(wire.CodeTokenInvalid, "the token was issued by broker %s; this is broker %s", tok.Broker.PeerID, a.self.ID())
	}
	hash := wire.HashSecret(tok.Secret)
	t, err := a.store.Login(hash, remote, a.isAdmin(hash), a.cfg.Now())
	if err != nil {
		return nil, wire.Errorf(loginCode(err), "login refused: %s", err.Error())
	}
	a.repl.Written(store.Key{Kind: store.KindTechnician, ID: t.Name})
	a.cfg.Logger.Info("technician logged in", "technician", t.Name, "key", remote, "admin", t.Admin)
	return &wire.LoginReply{Technician: t, Broker: a.self.Info()}, nil
}

// loginCode is the code of a refused login.
func loginCode(err error) string {
	switch {
	case errors.Is(err, store.ErrTokenUnknown), errors.Is(err, store.ErrTokenExpired):
		return wire.CodeTokenInvalid
	case errors.Is(err, store.ErrExists):
		return wire.CodeConflict
	}
	return wire.CodeInternal
}
