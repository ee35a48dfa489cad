package ipc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
)

// pipeListener serves a named pipe the classic Win32 way: one instance
// always waits for the next client (ConnectNamedPipe), and a new one is
// made as soon as a client arrives. Accept is called from one goroutine
// at a time, as net.Listener users do.
type pipeListener struct {
	// Immutable after newPipeListener.
	name  string
	sa    *windows.SecurityAttributes // keeps the descriptor alive
	event windows.Handle              // signalled when ConnectNamedPipe completes

	// mu guards all following fields.
	mu       sync.Mutex
	next     windows.Handle      // the instance the next Accept waits on; 0 if making it failed
	waiting  windows.Handle      // the instance Accept waits on now, or 0
	pending  *windows.Overlapped // the ConnectNamedPipe Accept waits for, or nil
	acceptDn chan struct{}       // closed when the pending Accept returns
	closed   bool
}

var _ net.Listener = (*pipeListener)(nil)

func newPipeListener(name, sddl string) (*pipeListener, error) {
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return nil, fmt.Errorf("security descriptor %q: %w", sddl, err)
	}
	l := &pipeListener{name: name,
		sa: &windows.SecurityAttributes{Length: uint32(unsafe.Sizeof(windows.SecurityAttributes{})), SecurityDescriptor: sd}}
	if l.event, err = windows.CreateEvent(nil, 1, 0, nil); err != nil {
		return nil, err
	}
	// The first instance claims the name: FILE_FLAG_FIRST_PIPE_INSTANCE
	// fails if another process holds it already.
	if l.next, err = l.instance(true); err != nil {
		windows.CloseHandle(l.event)
		if errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_PIPE_BUSY) {
			return nil, fmt.Errorf("%w: another process holds this pipe (is another sessiond running on this state directory?)", err)
		}
		return nil, err
	}
	return l, nil
}

// instance makes one server instance of the pipe, refusing remote clients.
func (l *pipeListener) instance(first bool) (windows.Handle, error) {
	name16, err := windows.UTF16PtrFromString(l.name)
	if err != nil {
		return 0, err
	}
	flags := uint32(windows.PIPE_ACCESS_DUPLEX | windows.FILE_FLAG_OVERLAPPED)
	if first {
		flags |= windows.FILE_FLAG_FIRST_PIPE_INSTANCE
	}
	mode := uint32(windows.PIPE_TYPE_BYTE | windows.PIPE_READMODE_BYTE | windows.PIPE_WAIT | windows.PIPE_REJECT_REMOTE_CLIENTS)
	return windows.CreateNamedPipe(name16, flags, mode, windows.PIPE_UNLIMITED_INSTANCES, 4096, 4096, 0, l.sa)
}

// Accept waits for a client on the waiting instance and returns it as a
// connection, after making the instance the next client will reach.
func (l *pipeListener) Accept() (net.Conn, error) {
	h, err := l.take()
	if err != nil {
		return nil, err
	}
	for {
		pending, err := l.issue(h)
		if pending {
			err = l.wait(h)
		}
		if errors.Is(err, windows.ERROR_NO_DATA) {
			// A client came and went before we looked: wait again.
			windows.DisconnectNamedPipe(h)
			continue
		}
		return l.finish(h, err)
	}
}

// take takes the waiting instance, making one if the last try failed.
func (l *pipeListener) take() (windows.Handle, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, net.ErrClosed
	}
	if l.next == 0 {
		h, err := l.instance(false)
		if err != nil {
			return 0, &net.OpError{Op: "accept", Net: "pipe", Addr: pipeAddr(l.name), Err: err}
		}
		l.next = h
	}
	h := l.next
	l.next = 0
	return h, nil
}

// issue starts waiting for a client on h. It holds mu, so Close either
// finds the wait to cancel or runs before it and is seen here.
func (l *pipeListener) issue(h windows.Handle) (pending bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, net.ErrClosed
	}
	windows.ResetEvent(l.event)
	ov := &windows.Overlapped{HEvent: l.event}
	err = windows.ConnectNamedPipe(h, ov)
	switch {
	case err == nil, errors.Is(err, windows.ERROR_PIPE_CONNECTED):
		return false, nil
	case !errors.Is(err, windows.ERROR_IO_PENDING):
		return false, err
	}
	l.waiting, l.pending, l.acceptDn = h, ov, make(chan struct{})
	return true, nil
}

// wait waits for the ConnectNamedPipe that issue started.
func (l *pipeListener) wait(h windows.Handle) error {
	l.mu.Lock()
	ov := l.pending
	l.mu.Unlock()
	_, err := windows.WaitForSingleObject(l.event, windows.INFINITE)
	if err == nil {
		var n uint32
		err = windows.GetOverlappedResult(h, ov, &n, false)
	}
	l.mu.Lock()
	l.waiting, l.pending = 0, nil
	close(l.acceptDn)
	l.mu.Unlock()
	return err
}

// finish turns a connected instance into a connection and makes the next
// instance, or closes h if the wait failed or the listener closed.
func (l *pipeListener) finish(h windows.Handle, err error) (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || err != nil {
		windows.CloseHandle(h)
		if l.closed {
			return nil, net.ErrClosed
		}
		return nil, &net.OpError{Op: "accept", Net: "pipe", Addr: pipeAddr(l.name), Err: err}
	}
	// A failure here is reported by the next Accept, which tries again.
	l.next, _ = l.instance(false)
	return newPipeConn(h, l.name), nil
}

// Close stops Accept and closes the waiting instance; connections already
// accepted stay open. Order: cancel the pending wait, let Accept close its
// instance, then close the rest, so no handle is closed while in use.
func (l *pipeListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	var wait chan struct{}
	if l.pending != nil {
		wait = l.acceptDn
		// Accept wakes with ERROR_OPERATION_ABORTED, or with a client
		// that raced the cancel; either way it sees closed.
		windows.CancelIoEx(l.waiting, l.pending)
	}
	l.mu.Unlock()
	if wait != nil {
		<-wait
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next != 0 {
		windows.CloseHandle(l.next)
		l.next = 0
	}
	return windows.CloseHandle(l.event)
}

// Addr is the pipe's name.
func (l *pipeListener) Addr() net.Addr { return pipeAddr(l.name) }

// pipeAddr is a pipe's name as a net.Addr.
type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }

// pipeConn is one end of a connected pipe instance. os.File serves an
// overlapped handle through the runtime's poller, with deadlines.
type pipeConn struct {
	*os.File
	addr pipeAddr
}

var _ net.Conn = (*pipeConn)(nil)

func newPipeConn(h windows.Handle, name string) *pipeConn {
	return &pipeConn{File: os.NewFile(uintptr(h), name), addr: pipeAddr(name)}
}

func (c *pipeConn) LocalAddr() net.Addr  { return c.addr }
func (c *pipeConn) RemoteAddr() net.Addr { return c.addr }
