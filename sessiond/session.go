package sessiond

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/readymesh/readymesh/mesh"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/channel"
	"github.com/readymesh/readymesh/sessiond/localdb"
)

// startSessions opens the session socket and serves offers from brokers.
func (a *Agent) startSessions() error {
	chs, err := channel.New(channel.Config{User: a.cfg.SessionUser, Logger: a.log,
		TranscriptDir: filepath.Join(a.cfg.StateDir, TranscriptDir), OnCommand: a.recordCommand, RecordInput: a.cfg.RecordInput,
		OnShare: a.kickStatus})
	if err != nil {
		return fmt.Errorf("sessiond: %w", err)
	}
	a.channels = chs
	l, err := mesh.Listen(mesh.ListenConfig{
		Channels:  chs.Handlers(),
		Consent:   a.askConsent,
		Key:       a.key,
		Addr:      a.cfg.SessionAddr,
		Trusted:   a.trustedBroker,
		MarkUsed:  a.markGrantUsed,
		Relay:     a.openRelay,
		OnChange:  a.sessionsChanged,
		Logger:    a.log,
		Now:       a.cfg.Now,
		Net:       a.cfg.Net,
		WebRTCNet: a.cfg.Net,
	})
	if err != nil {
		return fmt.Errorf("sessiond: %w", err)
	}
	a.sessions = l
	a.host.SetStreamHandler(wire.ProtoSession, a.handleOffer)
	a.host.SetStreamHandler(wire.ProtoPolicy, a.handlePolicy)
	a.host.SetStreamHandler(wire.ProtoJob, a.handleJob)
	a.host.SetStreamHandler(wire.ProtoRevoke, a.handleRevoke)
	return nil
}

// trustedBroker reports whether p is a broker this agent knows: the one it
// enrolled with or one it learned from them. Only they may issue grants.
func (a *Agent) trustedBroker(p peer.ID) bool {
	for _, b := range a.brokers.all() {
		if b.PeerID == p.String() {
			return true
		}
	}
	return false
}

// handleOffer answers a session offer carried by a broker: the agent's
// side of the session, signed with its key, or why it refused.
func (a *Agent) handleOffer(s network.Stream) {
	defer s.Close()
	from := s.Conn().RemotePeer()
	s.SetDeadline(time.Now().Add(a.cfg.ConsentTimeout + 30*time.Second))
	ans := a.signedAnswer(a.offer(s, from))
	if e := ans.Error; e != nil {
		a.log.Warn("refused a session offer", "from", from, "code", e.Code, "reason", e.Message)
	}
	wire.Write(s, &ans)
}

// offer reads a session offer from broker from and hands it to the
// session listener, which checks the grant, asks for consent and prepares
// the agent's side of the session.
func (a *Agent) offer(s network.Stream, from peer.ID) (*wire.PeerParams, *wire.Error) {
	if !a.trustedBroker(from) {
		return nil, &wire.Error{Code: wire.CodeForbidden, Message: "only this agent's brokers may offer sessions"}
	}
	var o wire.Offer
	if err := wire.NewReader(s).Read(wire.MaxControl, &o); err != nil {
		code := wire.CodeBadRequest
		if errors.Is(err, wire.ErrTooLarge) {
			code = wire.CodeTooLarge
		}
		return nil, &wire.Error{Code: code, Message: err.Error()}
	}
	stunSrv := brokerSTUN(s.Conn(), o.STUNPort)
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ConsentTimeout+20*time.Second)
	defer cancel()
	p, err := a.sessions.Offer(ctx, from, a.brokerName(from), &o, stunSrv)
	if err != nil {
		return nil, &wire.Error{Code: offerCode(err), Message: err.Error()}
	}
	if stunSrv.IsValid() {
		a.setSTUN(stunSrv)
	}
	return p, nil
}

// signedAnswer is the answer to an offer: the refusal, or the agent's
// params signed with its key.
func (a *Agent) signedAnswer(p *wire.PeerParams, refusal *wire.Error) wire.Answer {
	if refusal != nil {
		return wire.Answer{Error: refusal}
	}
	sig, err := mesh.SignParams(a.key.Priv, *p)
	if err != nil {
		return wire.Answer{Error: &wire.Error{Code: wire.CodeInternal, Message: "sign the answer: " + err.Error()}}
	}
	return wire.Answer{Params: *p, ParamsSig: sig}
}

// brokerName is the name of the known broker with peer ID p, or "".
func (a *Agent) brokerName(p peer.ID) string {
	name := ""
	for _, b := range a.brokers.all() {
		if b.PeerID == p.String() {
			name = b.Name
		}
	}
	return name
}

// brokerSTUN is the broker's STUN server: the broker's address on the
// bridge with the port its offer names, or the zero AddrPort when it
// names none.
func brokerSTUN(c network.Conn, port int) netip.AddrPort {
	if port <= 0 {
		return netip.AddrPort{}
	}
	ip, ok := remoteIP(c)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip, uint16(port))
}

func offerCode(err error) string {
	switch {
	case errors.Is(err, mesh.ErrGrantUsed):
		return wire.CodeConflict
	case errors.Is(err, ErrConsentDenied), errors.Is(err, ErrConsentTimeout):
		return wire.CodeForbidden
	case errors.Is(err, mesh.ErrGrantForged), errors.Is(err, mesh.ErrGrantIssuer), errors.Is(err, mesh.ErrGrantExpired),
		errors.Is(err, mesh.ErrGrantMachine), errors.Is(err, mesh.ErrGrantPeer):
		return wire.CodeForbidden
	}
	return wire.CodeBadRequest
}

// remoteIP is the IP a connection's remote multiaddr names.
func remoteIP(c network.Conn) (netip.Addr, bool) {
	ip, err := manet.ToIP(c.RemoteMultiaddr())
	if err != nil {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// openRelay joins a session's relay on the broker that offered it.
func (a *Agent) openRelay(ctx context.Context, broker peer.ID, session string) (io.ReadWriteCloser, error) {
	return bridge.OpenRelay(ctx, a.host, broker, session)
}

// markGrantUsed records a used grant in the local database, reporting a repeat as
// mesh.ErrGrantUsed.
func (a *Agent) markGrantUsed(session string, expires time.Time) error {
	err := a.db.MarkGrantUsed(session, expires)
	if errors.Is(err, localdb.ErrGrantUsed) {
		return fmt.Errorf("%w: session %s (recorded before a restart)", mesh.ErrGrantUsed, session)
	}
	return err
}
