package rtc

import (
	"context"
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"
)

// Offerer is the technician's side of a session before the agent's answer
// arrives.
type Offerer struct {
	p *peer

	mu       sync.Mutex // mu guards accepted
	accepted bool
}

// Offer starts a session as the offerer (the ICE controlling side, which
// picks the path). It gathers candidates, at most cfg.GatherTimeout or
// until ctx ends, and returns the offer SDP for the signalling layer to
// deliver. The Offerer must be closed.
func Offer(ctx context.Context, cfg Config) (*Offerer, string, error) {
	p, err := newPeer(cfg, "offerer", false)
	if err != nil {
		return nil, "", err
	}
	offer, err := p.pc.CreateOffer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(offer)
	}
	if err != nil {
		_ = p.close()
		return nil, "", fmt.Errorf("rtc: offerer: create offer: %w", err)
	}
	desc, err := p.gather(ctx)
	if err != nil {
		_ = p.close()
		return nil, "", err
	}
	return &Offerer{p: p}, desc, nil
}

// Accept applies the agent's answer and waits until ICE, DTLS and both
// channels are up, the connection fails, or ctx ends. An answer that
// fails the checks of Fingerprints (or is larger than MaxSDPSize) is
// refused with ErrSDP and leaves the Offerer as it was; any later failure
// closes it. Accept succeeds once.
func (o *Offerer) Accept(ctx context.Context, answer string) (*Session, error) {
	if err := checkRemote(answer); err != nil {
		return nil, fmt.Errorf("rtc: offerer: accept answer: %w", err)
	}
	o.mu.Lock()
	if o.accepted {
		o.mu.Unlock()
		return nil, fmt.Errorf("rtc: offerer: %w", ErrAccepted)
	}
	o.accepted = true
	o.mu.Unlock()

	err := o.p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
	if err != nil {
		_ = o.p.close()
		return nil, fmt.Errorf("rtc: offerer: apply answer: %w", err)
	}
	if err := o.p.waitOpen(ctx); err != nil {
		_ = o.p.close()
		return nil, err
	}
	return newSession(o.p, true), nil
}

// Close ends the offer and any Session Accept returned. It is idempotent.
func (o *Offerer) Close() error { return o.p.close() }

// Answerer is the agent's side of a session.
type Answerer struct {
	p *peer

	once    sync.Once
	session *Session // set by once
}

// Answer starts a session as the answerer from the technician's offer. It
// refuses an offer larger than MaxSDPSize, unparsable, or without a DTLS
// fingerprint or data-channel section, with ErrSDP. It gathers candidates,
// at most cfg.GatherTimeout or until ctx ends, and returns the answer SDP
// for the signalling layer to deliver. From then on the answerer echoes
// every message on the echo channel. The Answerer must be closed.
func Answer(ctx context.Context, cfg Config, offer string) (*Answerer, string, error) {
	if err := checkRemote(offer); err != nil {
		return nil, "", fmt.Errorf("rtc: answerer: %w", err)
	}
	p, err := newPeer(cfg, "answerer", true)
	if err != nil {
		return nil, "", err
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		_ = p.close()
		return nil, "", fmt.Errorf("rtc: answerer: apply offer: %w", err)
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(answer)
	}
	if err != nil {
		_ = p.close()
		return nil, "", fmt.Errorf("rtc: answerer: create answer: %w", err)
	}
	desc, err := p.gather(ctx)
	if err != nil {
		_ = p.close()
		return nil, "", err
	}
	return &Answerer{p: p}, desc, nil
}

// Session waits until both channels are open, the connection fails, or
// ctx ends, and returns the session. Every call returns the same Session.
func (a *Answerer) Session(ctx context.Context) (*Session, error) {
	if err := a.p.waitOpen(ctx); err != nil {
		return nil, err
	}
	a.once.Do(func() { a.session = newSession(a.p, false) })
	return a.session, nil
}

// Close ends the session. It is idempotent.
func (a *Answerer) Close() error { return a.p.close() }
