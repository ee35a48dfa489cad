package mesh

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/quic-go/quic-go"

	"github.com/readymesh/readymesh/peer/wire"
)

// A technician claims its grant on the first stream of its connection:
// the hello channel carries the session ID, the agent answers with the
// granted mode or a refusal. The grant is checked twice: the TLS
// handshake pins the granted technician's key (tlsFor), and the claim
// checks the key the connection authenticated, the grant's expiry and
// that it was never used (claim).

// claimTimeout bounds each step of a claim: the technician opening the
// hello channel, and the exchange on it.
const claimTimeout = 10 * time.Second

// tlsFor picks the TLS configuration for a connection from the session ID
// in its server name: only the technician the pending grant names gets
// through the handshake.
func (l *Listener) tlsFor(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	id := hello.ServerName
	if len(id) != 33 || id[0] != 's' {
		l.log.Info("refused a session connection", "from", remoteOf(hello), "err", "no session in server name")
		return nil, ErrUnknownSession
	}
	id = id[1:]
	l.mu.Lock()
	ps := l.pending[id]
	l.mu.Unlock()
	if ps == nil {
		l.log.Info("refused a session connection", "from", remoteOf(hello), "session", id, "err", ErrUnknownSession)
		return nil, ErrUnknownSession
	}
	// Expiry and single use are checked at the claim, where the refusal
	// can say why; the key is checked here, so nobody but the granted
	// technician learns even that.
	verify := pinned(ps.tech)
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{l.cert},
		NextProtos:             []string{alpn},
		ClientAuth:             tls.RequireAnyClientCert,
		SessionTicketsDisabled: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if err := verify(raw, nil); err != nil {
				l.log.Info("refused a session connection", "from", remoteOf(hello), "session", id, "err", err)
				return err
			}
			return nil
		},
	}, nil
}

func remoteOf(h *tls.ClientHelloInfo) string {
	if h.Conn == nil || h.Conn.RemoteAddr() == nil {
		return ""
	}
	return h.Conn.RemoteAddr().String()
}

// claim takes the technician's claim on session id from the connection's
// first stream and answers it. It returns the pending session the claim
// won, or false when the claim was refused and the connection closed.
func (l *Listener) claim(conn *quic.Conn, id string) (*pendingSession, bool) {
	st, err := acceptHello(conn)
	if err != nil {
		conn.CloseWithError(1, "no claim")
		return nil, false
	}
	ps, refusal := l.decideClaim(conn, st, id)
	if refusal != nil {
		l.refuseClaim(conn, st, id, refusal)
		return nil, false
	}
	if err := writeJSONFrame(st, helloReply{Mode: ps.grant.Mode}); err != nil {
		conn.CloseWithError(1, "claim reply failed")
		return nil, false
	}
	st.Close()
	return ps, true
}

// acceptHello waits for the stream that carries the claim.
func acceptHello(conn *quic.Conn) (*quic.Stream, error) {
	ctx, cancel := context.WithTimeout(conn.Context(), claimTimeout)
	defer cancel()
	st, err := conn.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	st.SetDeadline(time.Now().Add(claimTimeout))
	return st, nil
}

// decideClaim reads the hello and decides the claim: the session is
// pending, the connection's peer is the granted technician, the grant is
// unexpired and unused. An accepted claim uses the grant up, in memory and
// through MarkUsed. It returns the pending session, or the refusal.
func (l *Listener) decideClaim(conn *quic.Conn, st *quic.Stream, id string) (*pendingSession, *wire.Error) {
	if refusal := readHello(st, id); refusal != nil {
		return nil, refusal
	}
	l.mu.Lock()
	ps, refusal := l.checkClaimLocked(id, authenticatedPeer(conn))
	l.mu.Unlock()
	if refusal != nil {
		return nil, refusal
	}
	if l.cfg.MarkUsed != nil {
		if err := l.cfg.MarkUsed(id, ps.grant.Expires); err != nil {
			return nil, &wire.Error{Code: wire.CodeConflict, Message: err.Error()}
		}
	}
	return ps, nil
}

// readHello reads the hello channel's name and the claim, which must name
// session id.
func readHello(st io.Reader, id string) *wire.Error {
	name, err := readChanName(st)
	if err != nil || name != ChanHello {
		return &wire.Error{Code: wire.CodeBadRequest, Message: "the first channel must be hello"}
	}
	var h hello
	if err := readJSONFrame(st, &h); err != nil || h.Session != id {
		return &wire.Error{Code: wire.CodeBadRequest, Message: "hello does not name this connection's session"}
	}
	return nil
}

// authenticatedPeer returns the peer ID of the certificate the connection
// authenticated, or "" if there is none. The handshake pinned the
// technician's key; the claim checks it again on what the connection
// really authenticated, so no TLS shortcut can skip the pin.
func authenticatedPeer(conn *quic.Conn) peer.ID {
	var id peer.ID
	if certs := conn.ConnectionState().TLS.PeerCertificates; len(certs) == 1 {
		id, _ = certPeer([][]byte{certs[0].Raw})
	}
	return id
}

// checkClaimLocked decides a claim on session id by tech, and records the
// grant as used if it is accepted. l.mu must be held.
func (l *Listener) checkClaimLocked(id string, tech peer.ID) (*pendingSession, *wire.Error) {
	ps := l.pending[id]
	_, used := l.used[id]
	switch {
	case ps == nil:
		return nil, &wire.Error{Code: wire.CodeNotFound, Message: ErrUnknownSession.Error()}
	case tech != ps.tech:
		return nil, &wire.Error{Code: wire.CodeForbidden, Message: ErrGrantPeer.Error()}
	case used:
		return nil, &wire.Error{Code: wire.CodeConflict,
			Message: fmt.Sprintf("%v: session %s is open or was opened before", ErrGrantUsed, id)}
	case !l.cfg.Now().Before(ps.grant.Expires):
		return nil, &wire.Error{Code: wire.CodeForbidden,
			Message: fmt.Sprintf("%v at %s: ask the broker for a new session", ErrGrantExpired, ps.grant.Expires.Format(time.RFC3339))}
	}
	l.pruneUsedLocked()
	l.used[id] = ps.grant.Expires
	return ps, nil
}

// refuseClaim answers a claim with its refusal and closes the connection.
func (l *Listener) refuseClaim(conn *quic.Conn, st *quic.Stream, id string, refusal *wire.Error) {
	writeJSONFrame(st, helloReply{Error: refusal})
	st.Close()
	l.log.Info("refused a session claim", "session", id, "from", conn.RemoteAddr(), "err", refusal.Message)
	time.Sleep(50 * time.Millisecond) // let the refusal leave before the close
	conn.CloseWithError(1, refusal.Message)
}

func (l *Listener) isUsed(session string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.used[session]
	return ok
}

// markUsed records a grant as used, in memory and through MarkUsed. It is
// the claim of a WebRTC session, whose grant is used when the offer is
// answered.
func (l *Listener) markUsed(g wire.Grant) error {
	l.mu.Lock()
	if _, used := l.used[g.Session]; used {
		l.mu.Unlock()
		return fmt.Errorf("%w: session %s", ErrGrantUsed, g.Session)
	}
	l.pruneUsedLocked()
	l.used[g.Session] = g.Expires
	l.mu.Unlock()
	if l.cfg.MarkUsed != nil {
		if err := l.cfg.MarkUsed(g.Session, g.Expires); err != nil {
			return err
		}
	}
	return nil
}

// pruneUsedLocked forgets used grants that have expired: they are refused
// as expired anyway. l.mu must be held.
func (l *Listener) pruneUsedLocked() {
	if len(l.used) < 256 {
		return
	}
	now := l.cfg.Now()
	for id, exp := range l.used {
		if now.After(exp) {
			delete(l.used, id)
		}
	}
}
