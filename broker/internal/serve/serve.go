// Package serve opens the broker's stream protocols.
//
// Every protocol a broker serves on its libp2p host (enrolment, check-ins,
// presence, technician requests, replication, the relay, session status,
// transcripts) starts a stream the same way: bound the stream in time,
// read one length-prefixed request within a size limit, and answer a
// request that cannot be read, or is refused, in the protocol's own reply
// type with its Error set, logged and counted. Handle does that once, so a
// handler holds only what its protocol does, and a refusal is a returned
// error with a code (a *wire.Error), never a half-written reply.
//
// A refusal changes nothing stored: handlers check before they write.
package serve

import (
	"errors"
	"log/slog"
	"reflect"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/readymesh/readymesh/peer/wire"
)

// refusalWriteTimeout bounds the write of a refusal: a peer that does not
// read it does not hold the handler.
const refusalWriteTimeout = 5 * time.Second

// Server holds what every handler shares: the log and the count of
// refusals. It is safe for concurrent use.
type Server struct {
	log     *slog.Logger
	refused *prometheus.CounterVec
}

// New returns a Server logging to log (nil means discard) and registers
// readymesh_refused_total on reg (nil means not exported).
func New(log *slog.Logger, reg prometheus.Registerer) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "readymesh_refused_total",
		Help: "Refused requests by protocol and error code."}, []string{"request", "code"})
	if reg != nil {
		reg.MustRegister(refused)
	}
	return &Server{log: log, refused: refused}
}

// Refused counts a request refused outside a stream: a rate limit, or the
// web console's API.
func (srv *Server) Refused(request, code string) {
	srv.refused.WithLabelValues(request, code).Inc()
}

// Spec says how one protocol's streams open.
type Spec struct {
	// Name names the protocol in logs and in the request label of
	// readymesh_refused_total ("enroll", "checkin", …).
	Name string
	// Deadline bounds the stream from its opening: reading the request,
	// the handler's work and the reply. A handler that runs longer
	// (presence, the relay, requests that wait) sets its own deadlines.
	Deadline time.Duration
	// MaxRequest bounds the request in bytes; a larger one is refused
	// from its length prefix, unread.
	MaxRequest int
	// ReadBuffer is the stream reader's buffer in bytes. Zero means
	// wire's default. Long-lived streams of small messages (presence) use
	// a small one, since it is held for every connected peer.
	ReadBuffer int
	// Reply makes the protocol's reply type, in which refusals are
	// written. It must not be nil.
	Reply func() wire.Refusable
	// Result, if not nil, is told how each request ended: "ok", or the
	// refusal's code. Protocols with a metric of their own count there.
	Result func(result string)
	// Admit, if not nil, decides from the authenticated peer alone,
	// before the request is read, whether it may use the protocol: a
	// stranger's request is never buffered.
	Admit func(remote peer.ID) error
}

// Stream is an opened request stream.
type Stream struct {
	network.Stream
	// Remote is the peer the bridge authenticated: the only identity a
	// handler may trust.
	Remote peer.ID
	// Reader reads what follows the request on the stream.
	Reader *wire.Reader
	// Op, if a handler sets it, names the operation within the protocol
	// in a refusal's log and metric ("tech:" + Op).
	Op string
}

// Handle returns a stream handler that opens each stream by spec, reads
// one Req and calls f with it. f answers with one of:
//
//   - (reply, nil): reply is written.
//   - (nil, nil): f wrote what it had to itself (presence, the relay).
//   - (reply, err): a refusal. It is written in reply if reply is a
//     wire.Refusable (so a refusal can carry more than the error, as a
//     check-in's stored sequence), else in spec.Reply(). err's code is its
//     *wire.Error's; any other error is CodeInternal.
//
// The stream is closed when f returns.
func Handle[Req any](srv *Server, spec Spec, f func(s *Stream, req *Req) (any, error)) network.StreamHandler {
	return func(ns network.Stream) {
		defer ns.Close()
		if spec.Deadline > 0 {
			ns.SetDeadline(time.Now().Add(spec.Deadline))
		}
		s := &Stream{Stream: ns, Remote: ns.Conn().RemotePeer()}
		if spec.ReadBuffer > 0 {
			s.Reader = wire.NewReaderSize(ns, spec.ReadBuffer)
		} else {
			s.Reader = wire.NewReader(ns)
		}
		if spec.Admit != nil {
			if err := spec.Admit(s.Remote); err != nil {
				srv.refuse(s, &spec, nil, err)
				return
			}
		}
		var req Req
		release, err := readRequest(s, spec.MaxRequest, &req)
		defer release()
		if err != nil {
			srv.refuse(s, &spec, nil, err)
			return
		}
		reply, err := f(s, &req)
		if isNil(err) {
			err = nil // a nil *wire.Error returned as an error
		}
		if isNil(reply) {
			reply = nil
		}
		switch {
		case err != nil:
			srv.refuse(s, &spec, reply, err)
		case reply != nil:
			wire.Write(ns, reply)
			spec.result("ok")
		default:
			spec.result("ok")
		}
	}
}

// readRequest reads one request of at most max bytes into req. Its
// length is reserved from the stream's resource scope before the body is
// read, so the bytes a protocol, a peer and the broker buffer stay within
// the resource manager's memory limits; release returns the reservation
// once the handler is done with the request.
func readRequest(s *Stream, max int, req any) (release func(), err error) {
	release = func() {}
	n, err := s.Reader.Next(max)
	if err != nil {
		return release, wire.Errorf(ReadCode(err), "%s", err.Error())
	}
	if scope := s.Scope(); scope != nil && n > 0 {
		if err := scope.ReserveMemory(n, network.ReservationPriorityAlways); err != nil {
			return release, wire.Errorf(wire.CodeUnavailable,
				"no memory left for a %d-byte request on this protocol now (%v); retry later", n, err)
		}
		release = func() { scope.ReleaseMemory(n) }
	}
	body, err := s.Reader.Body(n)
	if err != nil {
		return release, wire.Errorf(ReadCode(err), "%s", err.Error())
	}
	if err := wire.Decode(body, req); err != nil {
		return release, wire.Errorf(ReadCode(err), "%s", err.Error())
	}
	return release, nil
}

func (spec *Spec) result(r string) {
	if spec.Result != nil {
		spec.Result(r)
	}
}

// refuse logs and counts a refusal and writes it in reply, or in a fresh
// reply of the protocol's type.
func (srv *Server) refuse(s *Stream, spec *Spec, reply any, err error) {
	e := Code(err)
	request := spec.Name
	if s.Op != "" {
		request += ":" + s.Op
	}
	srv.log.Warn("refused", "request", request, "peer", s.Remote.String(), "code", e.Code, "reason", e.Message)
	srv.Refused(request, e.Code)
	spec.result(e.Code)
	r, ok := reply.(wire.Refusable)
	if !ok {
		r = spec.Reply()
	}
	r.SetError(e)
	s.SetWriteDeadline(time.Now().Add(refusalWriteTimeout))
	wire.Write(s, r)
	s.CloseWrite()
}

// isNil reports whether v is nil or a nil pointer in an interface: a
// handler may pass on a typed nil from a helper.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// Code returns err as a *wire.Error: itself if it is one, else an
// internal error with its text.
func Code(err error) *wire.Error {
	var e *wire.Error
	if errors.As(err, &e) {
		return e
	}
	return &wire.Error{Code: wire.CodeInternal, Message: err.Error()}
}

// ReadCode is the code of a request that could not be read: too large,
// or else malformed (cut short, not JSON, invalid).
func ReadCode(err error) string {
	if errors.Is(err, wire.ErrTooLarge) {
		return wire.CodeTooLarge
	}
	return wire.CodeBadRequest
}
