package rtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// The two data channels, negotiated out of band: both sides create them
// with these IDs, so they open as soon as SCTP is up, without the in-band
// DCEP open handshake, and a peer cannot substitute channels of its own.
const (
	labelEcho  = "echo"
	idEcho     = uint16(0)
	labelBytes = "bytes"
	idBytes    = uint16(1)
)

// channel is a detached data channel: messages in, messages out.
type channel = datachannel.ReadWriteCloserDeadliner

// peer is one side's peer connection and its two channels; Offerer,
// Answerer and Session are views of it. pion calls its handlers on pion's
// goroutines.
type peer struct {
	// Immutable after newPeer.
	role   string // "offerer" or "answerer", for logs and errors
	cfg    Config // defaults applied
	log    *slog.Logger
	pc     *webrtc.PeerConnection
	opened chan struct{} // closed once both channels are detached
	done   chan struct{} // closed when the connection failed or closed
	// echoes says this side serves the echo channel (the answerer): once
	// it opens, a worker owned by the peer writes every message back.
	echoes bool

	// mu guards echo, bytes, closed, doneErr and inband, and the sends on
	// incoming.
	mu      sync.Mutex
	echo    channel
	bytes   channel
	closed  bool  // Close has begun; no more workers start
	doneErr error // why done was closed
	// workers counts goroutines running serveEcho. Add happens only under mu
	// while !closed, so Close's Wait never races an Add.
	workers sync.WaitGroup
	// incoming holds channels the offerer opened in-band, detached and
	// waiting for Session.AcceptChannel (answerer only); inband counts
	// every one accepted so far.
	incoming chan Channel
	inband   int

	// closeOnce runs close once; closeErr is written inside it and read
	// after it.
	closeOnce sync.Once
	closeErr  error
}

func newPeer(cfg Config, role string, echoes bool) (*peer, error) {
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("component", "rtc", "role", role)
	api, err := cfg.api(log)
	if err != nil {
		return nil, fmt.Errorf("rtc: %s: %w", role, err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: cfg.ICEServers})
	if err != nil {
		return nil, fmt.Errorf("rtc: %s: new peer connection: %w", role, err)
	}
	p := &peer{
		role: role, cfg: cfg, log: log, pc: pc, echoes: echoes,
		opened: make(chan struct{}), done: make(chan struct{}),
		incoming: make(chan Channel, MaxChannels),
	}
	pc.OnConnectionStateChange(p.onState)
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		p.log.Debug("ICE state", "state", s.String())
	})
	pc.OnDataChannel(p.onDataChannel)
	for _, c := range []struct {
		label string
		id    uint16
	}{{labelEcho, idEcho}, {labelBytes, idBytes}} {
		negotiated, id := true, c.id
		dc, err := pc.CreateDataChannel(c.label, &webrtc.DataChannelInit{Negotiated: &negotiated, ID: &id})
		if err != nil {
			_ = pc.Close()
			return nil, fmt.Errorf("rtc: %s: create %q channel: %w", role, c.label, err)
		}
		dc.OnOpen(func() { p.channelOpen(dc) })
	}
	return p, nil
}

func (p *peer) onState(s webrtc.PeerConnectionState) {
	p.log.Debug("connection state", "state", s.String())
	switch s {
	case webrtc.PeerConnectionStateConnected:
		path := p.path()
		p.log.Info("connected", "path", path.Kind, "local", path.Local, "remote", path.Remote)
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		p.finish(fmt.Errorf("%w: connection %s", ErrFailed, s))
	}
}

// channelOpen detaches an opened channel and, once both are, marks the
// peer open. pion calls it on a goroutine of its own.
func (p *peer) channelOpen(dc *webrtc.DataChannel) {
	raw, err := dc.DetachWithDeadline()
	if err != nil {
		p.finish(fmt.Errorf("%w: detach %q channel: %v", ErrFailed, dc.Label(), err))
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = raw.Close()
		return
	}
	switch dc.Label() {
	case labelEcho:
		p.echo = raw
		if p.echoes {
			p.workers.Add(1)
			go func() {
				defer p.workers.Done()
				p.serveEcho(raw)
			}()
		}
	case labelBytes:
		p.bytes = raw
	}
	if p.echo != nil && p.bytes != nil {
		close(p.opened)
	}
}

// onDataChannel takes a channel the peer opened in-band. Only the
// answerer accepts them, each named by a valid label, at most MaxChannels
// per session; anything else is closed at once.
func (p *peer) onDataChannel(dc *webrtc.DataChannel) {
	label := dc.Label()
	err := checkLabel(label)
	if err == nil && (!dc.Ordered() || dc.MaxRetransmits() != nil || dc.MaxPacketLifeTime() != nil) {
		// A Channel is a byte stream: it needs every message, in order.
		err = fmt.Errorf("channel %q is unordered or partially reliable", label)
	}
	if err != nil || !p.echoes {
		p.log.Warn("closing a data channel the peer opened in-band", "label", label, "err", err)
		_ = dc.Close()
		return
	}
	dc.OnOpen(func() {
		raw, err := dc.DetachWithDeadline()
		if err != nil {
			p.log.Warn("detach an in-band channel", "label", label, "err", err)
			_ = dc.Close()
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed || p.inband >= MaxChannels {
			p.log.Warn("closing an in-band channel", "label", label, "reason", "session closed or at its channel limit")
			_ = raw.Close()
			return
		}
		p.inband++
		// incoming holds MaxChannels, so this never blocks.
		p.incoming <- Channel{Label: label, Stream: newStream(raw)}
	})
}

// finish closes done with its first reason.
func (p *peer) finish(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.doneErr == nil {
		p.doneErr = err
		close(p.done)
	}
}

func (p *peer) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.doneErr
}

// gather waits for candidate gathering after SetLocalDescription, up to
// GatherTimeout, and returns the local SDP with the candidates found.
func (p *peer) gather(ctx context.Context) (string, error) {
	complete := webrtc.GatheringCompletePromise(p.pc)
	timer := time.NewTimer(p.cfg.GatherTimeout)
	defer timer.Stop()
	select {
	case <-complete:
	case <-timer.C:
		p.log.Warn("candidate gathering incomplete; sending what was found",
			"after", p.cfg.GatherTimeout)
	case <-ctx.Done():
		return "", fmt.Errorf("rtc: %s: gather candidates: %w", p.role, context.Cause(ctx))
	}
	desc := p.pc.LocalDescription()
	if desc == nil {
		return "", fmt.Errorf("rtc: %s: gather candidates: %w", p.role, ErrClosed)
	}
	return desc.SDP, nil
}

// waitOpen waits until both channels are open, the connection fails, or
// ctx ends.
func (p *peer) waitOpen(ctx context.Context) error {
	select {
	case <-p.opened:
		return nil
	case <-p.done:
		select {
		case <-p.opened: // opened, then closed: the caller sees Done
			return nil
		default:
		}
		return fmt.Errorf("rtc: %s: wait for channels: %w", p.role, p.err())
	case <-ctx.Done():
		return fmt.Errorf("rtc: %s: wait for channels (ICE state %s): %w",
			p.role, p.pc.ICEConnectionState(), context.Cause(ctx))
	}
}

// path reports the selected candidate pair.
func (p *peer) path() Path {
	sctp := p.pc.SCTP()
	if sctp == nil || sctp.Transport() == nil {
		return Path{}
	}
	pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return Path{}
	}
	return pathOf(pair)
}

// close tears the connection down. It is idempotent.
//
// Order: mark closed so no worker starts and Done reports a local close;
// close the peer connection, which
// sends DTLS close_notify (the peer's connection closes at once rather
// than timing out), stops ICE, DTLS and SCTP and waits for pion's
// goroutines; with SCTP gone every detached channel's reads fail, so the
// echo worker returns and can be waited for.
func (p *peer) close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.finish(fmt.Errorf("%w: closed locally", ErrClosed))
		if err := p.pc.GracefulClose(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
			p.closeErr = fmt.Errorf("rtc: %s: close: %w", p.role, err)
		}
		p.workers.Wait()
		p.log.Debug("closed")
	})
	return p.closeErr
}
