package mesh

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/quic-go/quic-go"

	"github.com/readymesh/readymesh/mesh/rtc"
	"github.com/readymesh/readymesh/peer/wire"
)

// Channels a session carries, one QUIC stream each. A stream starts with
// a one-byte name length and the name. These test and measure the path;
// the agent adds its own (terminal, exec, files) through
// ListenConfig.Channels.
const (
	ChanHello  = "hello"  // first stream: the technician claims the grant
	ChanEcho   = "echo"   // the agent writes back what it reads
	ChanSink   = "sink"   // the agent reads to the end and answers the byte count
	ChanSource = "source" // the agent writes as many bytes as asked (8-byte count)
)

// hello is the technician's claim; helloReply the agent's verdict.
type hello struct {
	Session string `json:"session"`
}

type helloReply struct {
	Error *wire.Error `json:"error,omitempty"`
	Mode  string      `json:"mode,omitempty"`
}

// quicConfig is shared by both sides. KeepAlivePeriod keeps NAT mappings
// open (home routers drop idle UDP mappings after 30 s or more); windows
// are sized so one stream is not capped by the default 6 MiB / RTT.
func quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:           10 * time.Second,
		MaxIdleTimeout:                 30 * time.Second,
		KeepAlivePeriod:                5 * time.Second,
		EnableDatagrams:                true,
		InitialStreamReceiveWindow:     2 << 20,
		MaxStreamReceiveWindow:         32 << 20,
		InitialConnectionReceiveWindow: 4 << 20,
		MaxConnectionReceiveWindow:     64 << 20,
	}
}

func writeChanName(w io.Writer, name string) error {
	if len(name) == 0 || len(name) > 255 {
		return fmt.Errorf("channel name %q", name)
	}
	_, err := w.Write(append([]byte{byte(len(name))}, name...))
	return err
}

func readChanName(r io.Reader) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", err
	}
	b := make([]byte, n[0])
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// writeJSONFrame writes a length-prefixed JSON message on a channel.
func writeJSONFrame(w io.Writer, v any) error {
	body, err := wire.Encode(v)
	if err != nil {
		return err
	}
	_, err = w.Write(body)
	return err
}

func readJSONFrame(r io.Reader, v any) error {
	return wire.NewReader(r).Read(wire.MaxControl, v)
}

// Path describes the path a session's packets take.
type Path struct {
	Kind   string `json:"kind"` // wire.PathDirectQUIC, wire.PathRelayed, …
	Remote string `json:"remote,omitempty"`
	Via    string `json:"via,omitempty"` // the relaying broker
}

func (p Path) String() string {
	switch {
	case p.Via != "":
		return p.Kind + " via " + p.Via
	case p.Remote != "":
		return p.Kind + " " + p.Remote
	}
	return p.Kind
}

// Session is the technician's end of a live session.
type Session struct {
	ID      string
	Machine peer.ID
	Mode    string
	Grant   wire.Grant
	// Setup is the time from Dial to the agent accepting the grant (with
	// DialConfig.Pipeline, to the claim being sent).
	Setup time.Duration

	conn *quic.Conn
	rtc  *rtc.Session // instead of conn, for WebRTC sessions

	claimed  chan struct{} // closed with claimErr set when the agent answered
	claimErr error

	// mu guards path and changed, which is closed and replaced at every
	// change of path.
	mu      sync.Mutex
	path    Path
	changed chan struct{}

	// pingMu guards pingSeq and pings: the channel of each ping waiting
	// for its echo, by sequence number.
	pingMu  sync.Mutex
	pingSeq uint64
	pings   map[uint64]chan struct{}

	// Set by Dial. cancel ends the session's goroutines, which wg counts;
	// cleanup runs at Close, after they are done.
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	cleanup []func()
}

// Path returns the path in use now.
func (s *Session) Path() Path {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

// PathChanged returns a channel closed at the next path change.
func (s *Session) PathChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Session) setPath(p Path) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p == s.path {
		return
	}
	s.path = p
	close(s.changed)
	s.changed = make(chan struct{})
}

// Done is closed when the session's connection ends.
func (s *Session) Done() <-chan struct{} {
	if s.rtc != nil {
		return s.rtc.Done()
	}
	return s.conn.Context().Done()
}

// Open opens a channel.
func (s *Session) Open(ctx context.Context, name string) (*quic.Stream, error) {
	if s.rtc != nil {
		return nil, errNotQUIC
	}
	st, err := s.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("session %s: open %s: %w", s.ID, name, err)
	}
	if err := writeChanName(st, name); err != nil {
		st.CancelWrite(0)
		return nil, err
	}
	return st, nil
}

// Send writes n bytes on a sink channel and waits until the agent has
// read them all: one stream, as a bulk copy would use it.
func (s *Session) Send(ctx context.Context, n int64) error {
	if s.rtc != nil {
		return s.sendRTC(ctx, n)
	}
	st, err := s.Open(ctx, ChanSink)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	buf := make([]byte, 64<<10)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := st.Write(buf[:k]); err != nil {
			return fmt.Errorf("session %s: send: %w", s.ID, err)
		}
		left -= k
	}
	st.Close()
	var got [8]byte
	if _, err := io.ReadFull(st, got[:]); err != nil {
		return fmt.Errorf("session %s: send: no receipt: %w", s.ID, err)
	}
	if r := int64(binary.BigEndian.Uint64(got[:])); r != n {
		return fmt.Errorf("session %s: agent read %d bytes of %d", s.ID, r, n)
	}
	return nil
}

// Ping sends one datagram and waits for the agent's echo.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	if s.rtc != nil {
		return s.rtc.Ping(ctx)
	}
	s.pingMu.Lock()
	s.pingSeq++
	seq := s.pingSeq
	ch := make(chan struct{})
	s.pings[seq] = ch
	s.pingMu.Unlock()
	defer func() {
		s.pingMu.Lock()
		delete(s.pings, seq)
		s.pingMu.Unlock()
	}()
	var msg [9]byte
	msg[0] = 'p'
	binary.BigEndian.PutUint64(msg[1:], seq)
	start := time.Now()
	if err := s.conn.SendDatagram(msg[:]); err != nil {
		return 0, fmt.Errorf("session %s: ping: %w", s.ID, err)
	}
	select {
	case <-ch:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("session %s: ping: no answer: %w", s.ID, context.Cause(ctx))
	case <-s.conn.Context().Done():
		return 0, fmt.Errorf("session %s: ping: %w", s.ID, context.Cause(s.conn.Context()))
	}
}

// readDatagrams delivers ping answers.
func (s *Session) readDatagrams(ctx context.Context) {
	for {
		b, err := s.conn.ReceiveDatagram(ctx)
		if err != nil {
			return
		}
		if len(b) != 9 || b[0] != 'p' {
			continue
		}
		seq := binary.BigEndian.Uint64(b[1:])
		s.pingMu.Lock()
		if ch := s.pings[seq]; ch != nil {
			close(ch)
			delete(s.pings, seq)
		}
		s.pingMu.Unlock()
	}
}

// Close ends the session.
func (s *Session) Close() error {
	if s.rtc != nil {
		err := s.rtc.Close()
		s.cancel()
		for _, f := range s.cleanup {
			f()
		}
		return err
	}
	err := s.conn.CloseWithError(0, "session closed")
	if s.Path().Kind == wire.PathRelayed {
		// Let the close leave through the relay pump before it stops.
		time.Sleep(20 * time.Millisecond)
	}
	s.cancel()
	s.wg.Wait()
	for _, f := range s.cleanup {
		f()
	}
	return err
}

// claim runs the hello exchange on a new connection.
func claim(ctx context.Context, conn *quic.Conn, session string) (string, error) {
	st, err := sendClaim(ctx, conn, session)
	if err != nil {
		return "", err
	}
	return readClaimReply(st)
}

// sendClaim opens the hello channel and sends the claim.
func sendClaim(ctx context.Context, conn *quic.Conn, session string) (*quic.Stream, error) {
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	if err := writeChanName(st, ChanHello); err != nil {
		return nil, err
	}
	if err := writeJSONFrame(st, hello{Session: session}); err != nil {
		return nil, err
	}
	st.Close()
	return st, nil
}

func readClaimReply(st *quic.Stream) (string, error) {
	st.SetReadDeadline(time.Now().Add(15 * time.Second))
	var r helloReply
	if err := readJSONFrame(st, &r); err != nil {
		return "", err
	}
	if r.Error != nil {
		return "", r.Error
	}
	return r.Mode, nil
}

// readClaim waits for the agent's verdict on the claim; a refusal ends
// the session.
func (s *Session) readClaim(st *quic.Stream) {
	mode, err := readClaimReply(st)
	if err == nil && mode != s.Grant.Mode {
		err = fmt.Errorf("agent granted mode %q, the grant says %q", mode, s.Grant.Mode)
	}
	s.claimErr = err
	if err != nil {
		s.conn.CloseWithError(1, "claim refused: "+err.Error())
	}
	close(s.claimed)
}

// Claimed waits for the agent's verdict on the grant and returns its
// refusal, if any.
func (s *Session) Claimed(ctx context.Context) error {
	select {
	case <-s.claimed:
		return s.claimErr
	case <-ctx.Done():
		return ctx.Err()
	}
}
