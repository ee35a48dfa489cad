package conncap

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
)

// fakeListener hands out the server ends of pipes, as if each came from
// the address its dialer named.
type fakeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newFakeListener() *fakeListener {
	return &fakeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (f *fakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-f.conns:
		return c, nil
	case <-f.closed:
		return nil, net.ErrClosed
	}
}

func (f *fakeListener) Close() error   { f.once.Do(func() { close(f.closed) }); return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }

// fromConn is a pipe end that reports a remote address of its own.
type fromConn struct {
	net.Conn
	remote net.Addr
}

func (c *fromConn) RemoteAddr() net.Addr { return c.remote }

// dialer feeds a Listener from one accepting goroutine, owned by the
// test, and reports what became of each connection.
type dialer struct {
	t        *testing.T
	fl       *fakeListener
	l        *Listener
	accepted chan net.Conn
	refused  chan string
}

func newDialer(t *testing.T, cfg Config) *dialer {
	fl := newFakeListener()
	d := &dialer{t: t, fl: fl, accepted: make(chan net.Conn), refused: make(chan string, 1)}
	onRefuse := cfg.OnRefuse
	cfg.OnRefuse = func(reason string, remote net.Addr) {
		if onRefuse != nil {
			onRefuse(reason, remote)
		}
		d.refused <- reason
	}
	d.l = Wrap(fl, cfg)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := d.l.Accept()
			if err != nil {
				return
			}
			d.accepted <- c
		}
	})
	t.Cleanup(func() {
		d.l.Close()
		wg.Wait()
	})
	return d
}

// dial offers one connection from addr and returns the client's end and
// the server's end as Accept returned it, or nil when Accept closed it.
func (d *dialer) dial(addr string) (client, server net.Conn) {
	d.t.Helper()
	client, srv := net.Pipe()
	d.t.Cleanup(func() { client.Close() })
	remote := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))
	d.fl.conns <- &fromConn{Conn: srv, remote: remote}
	select {
	case c := <-d.accepted:
		d.t.Cleanup(func() { c.Close() })
		return client, c
	case <-d.refused:
		// The server's end is closed: a read on the pipe sees EOF.
		if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			d.t.Errorf("refused connection from %s: the client read %v, want EOF", addr, err)
		}
		return client, nil
	}
}

func (d *dialer) wantOpen(conns, addrs int) {
	d.t.Helper()
	if c, a := d.l.Open(); c != conns || a != addrs {
		d.t.Errorf("Open() = %d conns from %d addresses, want %d from %d", c, a, conns, addrs)
	}
}

func TestPerAddr(t *testing.T) {
	var refused []string
	d := newDialer(t, Config{Total: 100, PerAddr: 2, OnRefuse: func(r string, _ net.Addr) { refused = append(refused, r) }})
	_, a1 := d.dial("198.51.100.7:1001")
	_, a2 := d.dial("198.51.100.7:1002")
	if a1 == nil || a2 == nil {
		t.Fatal("the first two connections from one address were refused")
	}
	if _, a3 := d.dial("198.51.100.7:1003"); a3 != nil {
		t.Fatal("a third connection from one address was accepted, over PerAddr 2")
	}
	if len(refused) != 1 || refused[0] != ReasonPerAddr {
		t.Errorf("OnRefuse saw %v, want [%s]", refused, ReasonPerAddr)
	}
	if _, b1 := d.dial("198.51.100.8:1001"); b1 == nil {
		t.Fatal("another address was refused while the first was at its bound")
	}
	d.wantOpen(3, 2)
	a1.Close()
	a1.Close() // a second Close must not uncount twice
	d.wantOpen(2, 2)
	if _, a4 := d.dial("198.51.100.7:1004"); a4 == nil {
		t.Fatal("a connection from the address was refused after one of its two closed")
	}
}

func TestTotal(t *testing.T) {
	var refused []string
	d := newDialer(t, Config{Total: 3, PerAddr: 3, OnRefuse: func(r string, _ net.Addr) { refused = append(refused, r) }})
	var open []net.Conn
	for _, a := range []string{"203.0.113.1:1", "203.0.113.2:1", "[2001:db8::1]:1"} {
		_, c := d.dial(a)
		if c == nil {
			t.Fatalf("connection from %s refused under the total bound", a)
		}
		open = append(open, c)
	}
	if _, c := d.dial("203.0.113.4:1"); c != nil {
		t.Fatal("a fourth connection was accepted, over Total 3")
	}
	if len(refused) != 1 || refused[0] != ReasonTotal {
		t.Errorf("OnRefuse saw %v, want [%s]", refused, ReasonTotal)
	}
	open[0].Close()
	if _, c := d.dial("203.0.113.4:1"); c == nil {
		t.Fatal("a connection was refused after one of the three closed")
	}
}

// TestIPv6Prefix: the addresses of one /64 share a count, as one host's
// do; another /64 has its own.
func TestIPv6Prefix(t *testing.T) {
	d := newDialer(t, Config{Total: 10, PerAddr: 1})
	if _, c := d.dial("[2001:db8:1:2::1]:1"); c == nil {
		t.Fatal("first IPv6 connection refused")
	}
	if _, c := d.dial("[2001:db8:1:2::ffff]:1"); c != nil {
		t.Error("a second address of the same /64 was accepted over PerAddr 1")
	}
	if _, c := d.dial("[2001:db8:1:3::1]:1"); c == nil {
		t.Error("an address of another /64 was refused")
	}
	if _, c := d.dial("[::ffff:198.51.100.9]:1"); c == nil {
		t.Error("an IPv4-mapped address was refused")
	}
	if _, c := d.dial("198.51.100.9:2"); c != nil {
		t.Error("an IPv4 address was not counted with its IPv4-mapped form")
	}
}

// TestForgets: once every connection has closed, the listener holds no
// count and no address, however many addresses came and went.
func TestForgets(t *testing.T) {
	d := newDialer(t, Config{Total: 1000, PerAddr: 2})
	var open []net.Conn
	for i := range 200 {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i / 100), byte(i % 100)}), 5000)
		for range 2 {
			if _, c := d.dial(addr.String()); c != nil {
				open = append(open, c)
			}
		}
	}
	d.wantOpen(400, 200)
	for _, c := range open {
		c.Close()
	}
	d.wantOpen(0, 0)
	if n := len(d.l.byAddr); n != 0 {
		t.Errorf("the table holds %d entries after every connection closed", n)
	}
}

// TestAcceptError: the inner listener's error comes back from Accept, and
// closing the Listener closes the inner one.
func TestAcceptError(t *testing.T) {
	d := newDialer(t, Config{Total: 1, PerAddr: 1})
	d.l.Close()
	if _, err := d.l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
}

// TestLoopback runs the Listener on a real TCP socket: the client of a
// refused connection reads EOF, and nothing is left counted or running
// once the connections and the listener are closed.
func TestLoopback(t *testing.T) {
	before := runtime.NumGoroutine()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(ln, Config{Total: 10, PerAddr: 2})
	var wg sync.WaitGroup
	accepted := make(chan net.Conn, 10)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	})
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	var server []net.Conn
	for range 2 {
		server = append(server, <-accepted)
	}
	// The third was refused: which of the three it was depends on the
	// order of accept, so it is the client the server did not keep.
	kept := map[string]bool{}
	for _, c := range server {
		kept[c.RemoteAddr().String()] = true
	}
	for _, c := range clients {
		if kept[c.LocalAddr().String()] {
			continue
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("the client over PerAddr 2 read %v, want EOF", err)
		}
	}
	for _, c := range append(clients, server...) {
		c.Close()
	}
	l.Close()
	wg.Wait()
	if c, a := l.Open(); c != 0 || a != 0 {
		t.Errorf("after every close: %d conns from %d addresses counted", c, a)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after close, %d before", n, before)
	}
}
