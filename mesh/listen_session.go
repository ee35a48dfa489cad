package mesh

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/readymesh/readymesh/peer/wire"
)

// Channel is one channel of a live session, as an agent-side handler sees
// it. The handler enforces the grant's mode: the agent, not the
// technician's client, decides what a session may do.
type Channel struct {
	Stream  io.ReadWriteCloser
	Name    string
	Session wire.SessionInfo
	Grant   wire.Grant
}

// ChannelHandler serves one channel until it is done; the stream is
// closed after it returns. ctx ends with the session.
type ChannelHandler func(ctx context.Context, ch *Channel)

// accept serves every QUIC connection until the listener closes.
func (l *Listener) accept() {
	for {
		conn, err := l.ln.Accept(l.ctx)
		if err != nil {
			return
		}
		l.wg.Go(func() { l.serve(conn) })
	}
}

// serve runs one connection: the technician's claim first, then channels
// and datagrams until the connection ends.
func (l *Listener) serve(conn *quic.Conn) {
	id := conn.ConnectionState().TLS.ServerName[1:]
	ps, ok := l.claim(conn, id)
	if !ok {
		return
	}
	as, pr := l.activate(conn, id, ps)
	if pr != nil {
		// Keep answering probes for the session's life, so a relayed
		// technician can still punch through and move.
		defer pr.close()
	}
	l.log.Info("session accepted", "session", id, "technician", ps.grant.TechnicianName, "mode", ps.grant.Mode, "path", as.info.Path, "remote", as.info.Remote)
	l.changed()
	defer l.endSession(id, as, ps)
	l.runSession(conn, as)
}

// activate lists the session a claim won as active on conn. It returns the
// session and the offer's prober, which the session keeps.
func (l *Listener) activate(conn *quic.Conn, id string, ps *pendingSession) (*agentSession, *prober) {
	l.mu.Lock()
	defer l.mu.Unlock()
	as := &agentSession{conn: conn, pump: ps.pump, via: ps.relayBy, grant: ps.grant, info: wire.SessionInfo{Session: id,
		Technician: ps.grant.TechnicianName, Mode: ps.grant.Mode, Started: l.cfg.Now().UTC()}}
	as.info.Path, as.info.Remote = l.pathOf(as)
	l.active[id] = as
	return as, ps.prober
}

// endSession takes a session that ended off the active list, stops its
// relay pump and ends its offer's context.
func (l *Listener) endSession(id string, as *agentSession, ps *pendingSession) {
	l.mu.Lock()
	delete(l.active, id)
	p, cancel := as.pump, ps.cancel
	l.mu.Unlock()
	if p != nil {
		p.close()
	}
	cancel()
	l.log.Info("session ended", "session", id)
	l.changed()
}

// runSession serves a session's datagrams and channels until its
// connection ends, and waits for every channel's handler to return.
func (l *Listener) runSession(conn *quic.Conn, as *agentSession) {
	var wg sync.WaitGroup
	wg.Go(func() { l.echoDatagrams(conn) })
	if as.pump != nil {
		wg.Go(func() { l.closeWithRelay(conn, as) })
	}
	wg.Go(func() { l.watchPath(conn, as) })
	for {
		st, err := conn.AcceptStream(conn.Context())
		if err != nil {
			break
		}
		wg.Go(func() { l.channel(st, as) })
	}
	wg.Wait()
}

// closeWithRelay closes the connection if its relay ends while the session
// still uses it: waiting for QUIC's idle timeout would leave it listed.
func (l *Listener) closeWithRelay(conn *quic.Conn, as *agentSession) {
	select {
	case <-conn.Context().Done():
	case <-as.pump.done:
		l.mu.Lock()
		p, _ := l.pathOf(as)
		l.mu.Unlock()
		if strings.HasPrefix(p, wire.PathRelayed) {
			conn.CloseWithError(0, "relay closed")
		}
	}
}

// pathOf reports the path a session uses now: the relay pump's loopback
// address means the relay.
func (l *Listener) pathOf(as *agentSession) (string, string) {
	ra, _ := as.conn.RemoteAddr().(*net.UDPAddr)
	if ra != nil && as.pump != nil && ra.AddrPort().Port() == as.pump.addr().Port() && ra.IP.IsLoopback() {
		return wire.PathRelayed + " via " + as.via, ""
	}
	return wire.PathDirectQUIC, as.conn.RemoteAddr().String()
}

// watchPath notices QUIC migrations (relay → direct) and reports them.
func (l *Listener) watchPath(conn *quic.Conn, as *agentSession) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-conn.Context().Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		p, r := l.pathOf(as)
		changed := p != as.info.Path || r != as.info.Remote
		as.info.Path, as.info.Remote = p, r
		l.mu.Unlock()
		if changed {
			l.log.Info("session path changed", "session", as.info.Session, "path", p, "remote", r)
			l.changed()
		}
	}
}

// echoDatagrams answers the technician's pings: every datagram of up to
// 64 bytes goes back as it came.
func (l *Listener) echoDatagrams(conn *quic.Conn) {
	for {
		b, err := conn.ReceiveDatagram(conn.Context())
		if err != nil {
			return
		}
		if len(b) <= 64 {
			conn.SendDatagram(b)
		}
	}
}

// channel serves one stream: a built-in test channel, or one of the
// agent's handlers. Every mode may use the test channels: they move test
// bytes and deliver nothing to the machine.
func (l *Listener) channel(st *quic.Stream, as *agentSession) {
	defer st.Close()
	name, err := readChanName(st)
	if err != nil {
		st.CancelRead(1)
		return
	}
	switch name {
	case ChanEcho:
		io.Copy(st, st)
	case ChanSink:
		serveSink(st)
	case ChanSource:
		serveSource(st)
	default:
		l.handle(st, name, as)
	}
}

// serveSink reads to the end and answers the byte count.
func serveSink(st io.ReadWriter) {
	n, _ := io.Copy(io.Discard, st)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	st.Write(b[:])
}

// serveSource writes as many bytes as the 8-byte count it reads asks for.
func serveSource(st io.ReadWriter) {
	var b [8]byte
	if _, err := io.ReadFull(st, b[:]); err != nil {
		return
	}
	n := int64(binary.BigEndian.Uint64(b[:]))
	buf := make([]byte, 64<<10)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := st.Write(buf[:k]); err != nil {
			return
		}
		n -= k
	}
}

// handle passes a channel to the agent's handler for its name, or refuses
// it when there is none.
func (l *Listener) handle(st *quic.Stream, name string, as *agentSession) {
	h := l.cfg.Channels[name]
	if h == nil {
		l.log.Info("refused an unknown channel", "session", as.info.Session, "channel", name)
		st.CancelRead(2)
		st.CancelWrite(2)
		return
	}
	l.mu.Lock()
	info := as.info
	l.mu.Unlock()
	h(as.conn.Context(), &Channel{Stream: st, Name: name, Session: info, Grant: as.grant})
}
