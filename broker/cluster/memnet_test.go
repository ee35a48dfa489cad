package cluster

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// memNet is an in-memory network for memberlist: packets travel over
// buffered channels and are dropped, like UDP, when the receiver is slow
// or gone; streams are net.Pipe pairs. Everything blocks only on channels
// and timers, so it runs inside a testing/synctest bubble, where
// memberlist's timers run on the bubble's fake clock.
//
// memberlist's own MockNetwork does not fit these tests: adding a node
// while others run races on its maps, and a send to a node that has shut
// down blocks the sender forever, which is exactly what failure tests do.
type memNet struct {
	mu    sync.Mutex               // guards all following fields
	port  int                      // the last port given out
	nodes map[string]*memTransport // by "ip:port"
}

func newMemNet() *memNet { return &memNet{port: 7000, nodes: map[string]*memTransport{}} }

// transport attaches a new node to the network at 127.0.0.1 and the next
// free port.
func (n *memNet) transport() *memTransport {
	n.mu.Lock()
	n.port++
	port := n.port
	n.mu.Unlock()
	return n.transportAt(port)
}

// transportAt attaches a node at 127.0.0.1:port, as a restarted process
// binding its old port would.
func (n *memNet) transportAt(port int) *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := &memTransport{
		net:     n,
		addr:    &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1).To4(), Port: port},
		packets: make(chan *memberlist.Packet, 1024),
		streams: make(chan net.Conn),
		stop:    make(chan struct{}),
	}
	n.nodes[t.addr.String()] = t
	return t
}

func (n *memNet) lookup(addr string) *memTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[addr]
}

// memTransport is one node's attachment to a memNet.
type memTransport struct {
	net      *memNet
	addr     *net.UDPAddr
	packets  chan *memberlist.Packet
	streams  chan net.Conn
	stop     chan struct{}
	stopOnce sync.Once
}

var _ memberlist.NodeAwareTransport = (*memTransport)(nil)

var errRefused = errors.New("connection refused")

func (t *memTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		return net.ParseIP(ip), port, nil
	}
	return t.addr.IP, t.addr.Port, nil
}

func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *memTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	dst := t.net.lookup(a.Addr)
	if dst == nil {
		return now, nil // lost, as UDP to nowhere is
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: t.addr, Timestamp: now}
	select {
	case dst.packets <- p:
	default: // receive buffer full: dropped
	}
	return now, nil
}

func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }
func (t *memTransport) StreamCh() <-chan net.Conn           { return t.streams }

func (t *memTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *memTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	dst := t.net.lookup(a.Addr)
	if dst == nil {
		return nil, fmt.Errorf("dial %s: %w", a.Addr, errRefused)
	}
	c1, c2 := net.Pipe()
	client := &pipeConn{Conn: c1, local: t.addr, remote: dst.addr}
	server := &pipeConn{Conn: c2, local: dst.addr, remote: t.addr}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case dst.streams <- server:
		return client, nil
	case <-dst.stop:
	case <-timer.C:
	}
	c1.Close()
	c2.Close()
	return nil, fmt.Errorf("dial %s: %w", a.Addr, errRefused)
}

// Shutdown detaches the node: later sends to it are lost, dials refused.
func (t *memTransport) Shutdown() error {
	t.stopOnce.Do(func() {
		close(t.stop)
		t.net.mu.Lock()
		delete(t.net.nodes, t.addr.String())
		t.net.mu.Unlock()
	})
	return nil
}

// pipeConn gives a net.Pipe end real-looking addresses for memberlist's
// logs.
type pipeConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *pipeConn) LocalAddr() net.Addr  { return c.local }
func (c *pipeConn) RemoteAddr() net.Addr { return c.remote }

// faults decides which transmissions between nodes are lost. Nodes are
// named by their gossip addresses.
type faults struct {
	mu      sync.Mutex
	blocked map[[2]string]bool // mu guards; (from, to) → lost
}

func newFaults() *faults { return &faults{blocked: map[[2]string]bool{}} }

// partition cuts every path between a node in a and a node in b, both
// ways.
func (f *faults) partition(a, b []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			f.blocked[[2]string{x, y}] = true
			f.blocked[[2]string{y, x}] = true
		}
	}
}

// heal restores every path.
func (f *faults) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.blocked)
}

func (f *faults) cut(from, to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked[[2]string{from, to}]
}

// faultTransport wraps any memberlist transport and loses what faults
// says is cut: outgoing packets vanish, dials fail as a firewall's would
// after the timeout. Because a partition cuts both directions, filtering
// outgoing traffic on every node is enough.
type faultTransport struct {
	memberlist.NodeAwareTransport
	self    string
	faults  *faults
	dropped atomic.Int64
}

var _ memberlist.NodeAwareTransport = (*faultTransport)(nil)

func newFaultTransport(inner memberlist.NodeAwareTransport, f *faults) *faultTransport {
	ip, port, err := inner.FinalAdvertiseAddr("", 0)
	if err != nil {
		panic(err)
	}
	return &faultTransport{NodeAwareTransport: inner, self: net.JoinHostPort(ip.String(), strconv.Itoa(port)), faults: f}
}

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *faultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.faults.cut(t.self, a.Addr) {
		t.dropped.Add(1)
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *faultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.faults.cut(t.self, a.Addr) {
		t.dropped.Add(1)
		time.Sleep(timeout)
		return nil, fmt.Errorf("dial %s: i/o timeout (partitioned)", a.Addr)
	}
	return t.NodeAwareTransport.DialAddressTimeout(a, timeout)
}
