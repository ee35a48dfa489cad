package rtc

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// Path kinds.
const (
	// PathDirect is a path between the peers without a relay: host,
	// server- or peer-reflexive candidates on both ends.
	PathDirect = "direct-webrtc"
	// PathRelayed is a path through the broker's TURN relay on at least
	// one end.
	PathRelayed = "relayed-turn"
)

// Path is the candidate pair a session uses.
type Path struct {
	// Kind is PathDirect or PathRelayed; empty when no pair is selected.
	Kind string
	// Local and Remote are the pair's candidates as "type address:port",
	// e.g. "srflx 198.51.100.7:41234" or "relay 203.0.113.10:50000".
	Local, Remote string
}

func (p Path) String() string {
	if p.Kind == "" {
		return "no path"
	}
	return fmt.Sprintf("%s (%s ↔ %s)", p.Kind, p.Local, p.Remote)
}

func pathOf(pair *webrtc.ICECandidatePair) Path {
	if pair.Local == nil || pair.Remote == nil {
		return Path{}
	}
	kind := PathDirect
	if pair.Local.Typ == webrtc.ICECandidateTypeRelay || pair.Remote.Typ == webrtc.ICECandidateTypeRelay {
		kind = PathRelayed
	}
	return Path{Kind: kind, Local: candidateString(pair.Local), Remote: candidateString(pair.Remote)}
}

func candidateString(c *webrtc.ICECandidate) string {
	return c.Typ.String() + " " + net.JoinHostPort(c.Address, strconv.Itoa(int(c.Port)))
}

// Session is an open session: both data channels are usable. It stays
// usable until Done is closed.
type Session struct {
	p       *peer
	offerer bool
	echo    io.ReadWriteCloser
	bytes   *stream

	// pingMu guards pingSeq, and lets one Ping at a time own the echo
	// channel's reads.
	pingMu  sync.Mutex
	pingSeq uint64
}

func newSession(p *peer, offerer bool) *Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &Session{p: p, offerer: offerer, bytes: newStream(p.bytes)}
	if offerer {
		s.echo = p.echo
	} else {
		s.echo = answererEcho{}
	}
	return s
}

// Echo returns the echo channel. On the offerer, each Write sends one
// message (at most 64 KiB) and the answerer sends it back; each Read
// returns one whole message and needs a buffer that holds it. Ping uses the
// same channel: do not read it while a Ping runs. On the answerer, where
// the session itself echoes, every method returns ErrAnswererEcho.
func (s *Session) Echo() io.ReadWriteCloser { return s.echo }

// Bytes returns the "bytes" channel as a byte stream, for bulk transfer.
// Writes block while the send window is full. Closing it ends it for both
// sides: the peer reads what was written, then io.EOF. The value also has
// SetReadDeadline and SetWriteDeadline methods.
func (s *Session) Bytes() io.ReadWriteCloser { return s.bytes }

// Path returns the candidate pair in use. ICE can switch pairs during a
// session, so each call asks again.
func (s *Session) Path() Path { return s.p.path() }

// Done is closed when the session ends: the peer connection failed (see
// Config.FailedTimeout), the peer closed it, or Close was called.
func (s *Session) Done() <-chan struct{} { return s.p.done }

// Err returns why Done was closed, or nil while the session is open.
func (s *Session) Err() error { return s.p.err() }

// Close ends the session and releases its sockets. It is idempotent.
func (s *Session) Close() error { return s.p.close() }

// MaxChannels bounds the channels one session may open besides echo and
// bytes, over its whole life (closed ones count too): a live session
// needs a handful (a terminal, an exec, a file transfer), each costs the
// answerer a worker, and a session that needs more opens a new session.
const MaxChannels = 32

// Channel is a data channel the offerer opened in-band, as a byte stream
// (see Bytes for its semantics).
type Channel struct {
	// Label names what the channel carries, such as "terminal".
	Label  string
	Stream io.ReadWriteCloser
}

// checkLabel accepts channel labels of 1 to 32 characters from a-z, 0-9
// and '-', other than the two negotiated channels' labels.
func checkLabel(l string) error {
	if l == "" || len(l) > 32 || l == labelEcho || l == labelBytes {
		return fmt.Errorf("channel label %.40q not accepted", l)
	}
	for _, c := range l {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("channel label %.40q not accepted", l)
		}
	}
	return nil
}

// OpenChannel opens a channel named label in-band (the offerer only) and
// waits until it is open, the session ends, or ctx ends. The answerer
// gets it from AcceptChannel. Browsers open channels the same way, with
// RTCPeerConnection.createDataChannel(label).
func (s *Session) OpenChannel(ctx context.Context, label string) (io.ReadWriteCloser, error) {
	if !s.offerer {
		return nil, fmt.Errorf("rtc: open channel: only the offerer opens channels")
	}
	if err := checkLabel(label); err != nil {
		return nil, fmt.Errorf("rtc: open channel: %w", err)
	}
	dc, err := s.p.pc.CreateDataChannel(label, nil)
	if err != nil {
		return nil, fmt.Errorf("rtc: open channel %q: %w", label, err)
	}
	opened := make(chan struct{})
	dc.OnOpen(func() { close(opened) })
	select {
	case <-opened:
	case <-s.p.done:
		return nil, fmt.Errorf("rtc: open channel %q: %w", label, s.p.err())
	case <-ctx.Done():
		_ = dc.Close()
		return nil, fmt.Errorf("rtc: open channel %q: %w", label, context.Cause(ctx))
	}
	raw, err := dc.DetachWithDeadline()
	if err != nil {
		_ = dc.Close()
		return nil, fmt.Errorf("rtc: open channel %q: detach: %w", label, err)
	}
	return newStream(raw), nil
}

// AcceptChannel returns the next channel the offerer opened (the answerer
// only), waiting until one opens, the session ends, or ctx ends. Channels
// not accepted are closed with the session.
func (s *Session) AcceptChannel(ctx context.Context) (Channel, error) {
	if s.offerer {
		return Channel{}, fmt.Errorf("rtc: accept channel: only the answerer accepts channels")
	}
	select {
	case c := <-s.p.incoming:
		return c, nil
	case <-s.p.done:
		return Channel{}, fmt.Errorf("rtc: accept channel: %w", s.p.err())
	case <-ctx.Done():
		return Channel{}, fmt.Errorf("rtc: accept channel: %w", context.Cause(ctx))
	}
}

// pingTag marks Ping's messages on the echo channel, so that Ping skips
// replies to messages the caller wrote itself.
var pingTag = [8]byte{'r', 'm', '-', 'p', 'i', 'n', 'g', 0}

// maxStale bounds how many unrelated echoes Ping reads past before it
// gives up on its own.
const maxStale = 64

// Ping sends one small message on the echo channel and returns the time
// until it came back: a round trip through both peers' data-channel
// stacks, which is what an interactive session feels. Only the offerer can
// ping. ctx bounds the wait.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	if !s.offerer {
		return 0, fmt.Errorf("rtc: ping: %w", ErrAnswererEcho)
	}
	s.pingMu.Lock()
	defer s.pingMu.Unlock()
	ch := s.p.echo
	if err := context.Cause(ctx); err != nil {
		return 0, fmt.Errorf("rtc: ping: %w", err)
	}
	// Cancelling ctx moves the deadlines into the past, which unblocks a
	// pending Read or Write; the deferred func waits for that to finish
	// before clearing them, so the next Ping starts clean.
	if dl, ok := ctx.Deadline(); ok {
		_ = ch.SetReadDeadline(dl)
		_ = ch.SetWriteDeadline(dl)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		past := time.Unix(1, 0)
		_ = ch.SetReadDeadline(past)
		_ = ch.SetWriteDeadline(past)
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
		}
		_ = ch.SetReadDeadline(time.Time{})
		_ = ch.SetWriteDeadline(time.Time{})
	}()

	s.pingSeq++
	msg := binary.BigEndian.AppendUint64(pingTag[:], s.pingSeq)
	start := time.Now()
	if _, err := ch.Write(msg); err != nil {
		return 0, s.pingErr(ctx, err)
	}
	buf := make([]byte, maxMessage)
	for range maxStale {
		n, err := ch.Read(buf)
		if err != nil {
			return 0, s.pingErr(ctx, err)
		}
		if bytes.Equal(buf[:n], msg) {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("rtc: ping: no reply among %d echoed messages", maxStale)
}

func (s *Session) pingErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return fmt.Errorf("rtc: ping: %w", cause)
	}
	return fmt.Errorf("rtc: ping: %w", err)
}

// answererEcho stands for the echo channel on the answerer, which the
// session serves itself.
type answererEcho struct{}

func (answererEcho) Read([]byte) (int, error)  { return 0, ErrAnswererEcho }
func (answererEcho) Write([]byte) (int, error) { return 0, ErrAnswererEcho }
func (answererEcho) Close() error              { return ErrAnswererEcho }

// serveEcho writes every message of ch back until ch fails. It is the
// answerer's echo worker, bounded by the channel's life: the peer's close
// ends it by closing the connection under it.
func (p *peer) serveEcho(ch channel) {
	buf := make([]byte, maxMessage)
	for {
		n, err := ch.Read(buf)
		if err == nil {
			_, err = ch.Write(buf[:n])
		}
		if err != nil {
			p.log.Debug("echo channel ended", "err", err)
			return
		}
	}
}
