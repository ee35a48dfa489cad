package mesh

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"

	"github.com/readymesh/readymesh/peer/wire"
)

// delayNet is the host network with every UDP packet held back by delay
// before it is sent: a path of RTT 2×delay on loopback, since the kernel
// here has no netem.
type delayNet struct {
	*stdnet.Net
	delay time.Duration
}

func newDelayNet(b testing.TB, delay time.Duration) *delayNet {
	n, err := stdnet.NewNet()
	if err != nil {
		b.Fatal(err)
	}
	return &delayNet{Net: n, delay: delay}
}

func (n *delayNet) ListenPacket(network, address string) (net.PacketConn, error) {
	pc, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	return &delayConn{PacketConn: pc, delay: n.delay}, nil
}

var _ transport.Net = (*delayNet)(nil)

type delayConn struct {
	net.PacketConn
	delay time.Duration
}

func (c *delayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	buf := append([]byte(nil), p...)
	time.AfterFunc(c.delay, func() { c.PacketConn.WriteTo(buf, addr) })
	return len(p), nil
}

// delayProxy forwards TCP from its address to target, holding every chunk
// back by delay in each direction.
func delayProxy(b testing.TB, target string, delay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go delayCopy(s, c, delay)
			go delayCopy(c, s, delay)
		}
	}()
	return ln.Addr().String()
}

func delayCopy(dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	q := make(chan chunk, 1024)
	go func() {
		for c := range q {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.b); err != nil {
				return
			}
		}
		dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{b: append([]byte(nil), buf[:n]...), at: time.Now().Add(delay)}
		}
		if err != nil {
			close(q)
			return
		}
	}
}

const benchRTT = 40 * time.Millisecond

// BenchmarkSetup measures a session from the technician's request to the
// first byte echoed by the agent, on a path of benchRTT, in RTTs. The
// signalling goes technician → broker → agent → broker → technician with
// the broker half-way (a quarter RTT a leg, one RTT in all), as when the
// broker sits between the two sites. tls-tcp is the baseline: a TCP
// connect, a TLS 1.3 handshake and one echoed byte, with no signalling.
// quic-direct waits for the agent's verdict on the grant before the first
// channel; quic-direct-pipelined sends the first channel with the claim.
func BenchmarkSetup(b *testing.B) {
	for _, pipeline := range []bool{false, true} {
		name := "quic-direct"
		if pipeline {
			name += "-pipelined"
		}
		b.Run(name, func(b *testing.B) { benchSetupQUIC(b, pipeline) })
	}
	b.Run("tls-tcp", func(b *testing.B) {
		cert, err := certificate(newKey(b).Priv)
		if err != nil {
			b.Fatal(err)
		}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
		addr := delayProxy(b, ln.Addr().String(), benchRTT/2)
		var total time.Duration
		for b.Loop() {
			start := time.Now()
			c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
			if err != nil {
				b.Fatal(err)
			}
			c.Write([]byte{1})
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				b.Fatal(err)
			}
			// The proxy accepts locally, so the TCP handshake's round trip
			// is not delayed; count it as the one RTT it takes on a path.
			total += time.Since(start) + benchRTT
			c.Close()
		}
		b.ReportMetric(float64(total)/float64(b.N)/float64(benchRTT), "RTTs")
	})
}

// benchSetupQUIC measures direct QUIC setups; pipeline sends the first
// channel's data with the claim instead of after the agent's verdict.
func benchSetupQUIC(b *testing.B, pipeline bool) {
	p := newPairNet(b, newDelayNet(b, benchRTT/2))
	p.b.delay = benchRTT / 4
	cfg := p.dialConfig(wire.ModeReadOnly, wire.TransportQUIC, false)
	cfg.Net = newDelayNet(b, benchRTT/2)
	cfg.Pipeline = pipeline
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		s, err := Dial(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		echoOne(b, s)
		total += time.Since(start)
		if err := s.Claimed(context.Background()); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.ReportMetric(float64(total)/float64(b.N)/float64(benchRTT), "RTTs")
}

func echoOne(b testing.TB, s *Session) {
	st, err := s.Open(context.Background(), ChanEcho)
	if err != nil {
		b.Fatal(err)
	}
	st.Write([]byte{1})
	if _, err := io.ReadFull(st, make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
	st.Close()
}

func newPairNet(b testing.TB, n transport.Net) *pair {
	p := newPair(b, n)
	return p
}

// tcpRelay splices relay streams over real loopback TCP, as the broker
// splices bridge streams, so the relayed benchmark pays kernel copies.
func (tb *testBroker) tcpRelay(b testing.TB) Relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	var mu sync.Mutex // mu guards waiting
	waiting := map[string]net.Conn{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				id := make([]byte, 32)
				if _, err := io.ReadFull(c, id); err != nil {
					c.Close()
					return
				}
				mu.Lock()
				other, ok := waiting[string(id)]
				if !ok {
					waiting[string(id)] = c
					mu.Unlock()
					return
				}
				delete(waiting, string(id))
				mu.Unlock()
				go func() { io.Copy(other, c); other.Close() }()
				io.Copy(c, other)
				c.Close()
			}()
		}
	}()
	return func(ctx context.Context, session string) (io.ReadWriteCloser, error) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, err
		}
		c.Write([]byte(session))
		return c, nil
	}
}

// benchSession opens a session on loopback over transport, relayed
// through a TCP splice.
func benchSession(b *testing.B, transport string) *Session {
	p := newPair(b, nil)
	relay := p.b.tcpRelay(b)
	p.l.cfg.Relay = agentSide(relay)
	cfg := p.dialConfig(wire.ModeReadOnly, transport, transport == wire.TransportRelay)
	cfg.Relay = relay
	s, err := Dial(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkThroughput moves 64 MiB per op over one stream on loopback:
// direct QUIC, QUIC through a TCP splice (the relayed path's shape), and
// plain TCP as the baseline in the same run.
func BenchmarkThroughput(b *testing.B) {
	const size = 64 << 20
	for _, tc := range []struct{ name, transport string }{{"quic-direct", wire.TransportQUIC}, {"quic-relayed", wire.TransportRelay}} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchSession(b, tc.transport)
			b.SetBytes(size)
			for b.Loop() {
				if err := s.Send(context.Background(), size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("tcp", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					n, _ := io.Copy(io.Discard, c)
					c.Write([]byte{byte(n)})
					c.Close()
				}()
			}
		}()
		b.SetBytes(size)
		buf := make([]byte, 64<<10)
		for b.Loop() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			for left := size; left > 0; left -= len(buf) {
				c.Write(buf)
			}
			c.(*net.TCPConn).CloseWrite()
			io.ReadFull(c, make([]byte, 1))
			c.Close()
		}
	})
}

// BenchmarkEchoLatency is a keystroke's round trip: one byte on the echo
// channel and back, p50 and p99, over each path and over TCP.
func BenchmarkEchoLatency(b *testing.B) {
	report := func(b *testing.B, rtts []time.Duration) {
		sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
		b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
	}
	for _, tc := range []struct{ name, transport string }{{"quic-direct", wire.TransportQUIC}, {"quic-relayed", wire.TransportRelay}} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchSession(b, tc.transport)
			st, err := s.Open(context.Background(), ChanEcho)
			if err != nil {
				b.Fatal(err)
			}
			one := make([]byte, 1)
			var rtts []time.Duration
			for b.Loop() {
				start := time.Now()
				st.Write(one)
				if _, err := io.ReadFull(st, one); err != nil {
					b.Fatal(err)
				}
				rtts = append(rtts, time.Since(start))
			}
			report(b, rtts)
		})
	}
	b.Run("tcp", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				io.Copy(c, c)
			}
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		one := make([]byte, 1)
		var rtts []time.Duration
		for b.Loop() {
			start := time.Now()
			c.Write(one)
			io.ReadFull(c, one)
			rtts = append(rtts, time.Since(start))
		}
		report(b, rtts)
	})
}
