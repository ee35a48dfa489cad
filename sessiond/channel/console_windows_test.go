package channel

import (
	"sync"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/readymesh/readymesh/peer/wire"
)

// testShell is the shell startTestConsole starts.
const testShell = wire.ShellCmd

// endTestConsole ends the shell's job and closes the pseudo console. It
// does not wait: Windows leaves no process to reap, and close releases
// the process handle.
func endTestConsole(c *console) {
	c.kill()
	c.close()
}

// watchSize returns a function that tells the size c was last resized
// to. A pseudo console's size cannot be read back, so it watches the
// calls.
func watchSize(t *testing.T, c *console) func() (rows, cols int) {
	var mu sync.Mutex
	var last windows.Coord
	prev := conptyResize
	t.Cleanup(func() { conptyResize = prev })
	conptyResize = func(h windows.Handle, size windows.Coord) error {
		if h == c.hpc {
			mu.Lock()
			last = size
			mu.Unlock()
		}
		return prev(h, size)
	}
	return func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return int(last.Y), int(last.X)
	}
}

// conptyWatch watches the pseudo console calls: it counts resizes of a
// closed pseudo console (which it does not pass on: the handle is
// freed) and resizes that overlap a close.
type conptyWatch struct {
	mu        sync.Mutex
	closed    map[windows.Handle]bool
	resizing  int // resizes under way
	resizes   int // resizes passed on
	late      int // resizes of a closed pseudo console
	overlaps  int // closes begun while a resize was under way
	prevClose func(windows.Handle)
	prevSize  func(windows.Handle, windows.Coord) error
}

func watchConpty(t *testing.T) *conptyWatch {
	w := &conptyWatch{closed: map[windows.Handle]bool{}, prevClose: conptyClose, prevSize: conptyResize}
	t.Cleanup(func() { conptyClose, conptyResize = w.prevClose, w.prevSize })
	conptyClose = w.close
	conptyResize = w.resize
	return w
}

func (w *conptyWatch) close(h windows.Handle) {
	w.mu.Lock()
	w.closed[h] = true
	if w.resizing > 0 {
		w.overlaps++
	}
	w.mu.Unlock()
	w.prevClose(h)
}

func (w *conptyWatch) resize(h windows.Handle, size windows.Coord) error {
	w.mu.Lock()
	if w.closed[h] {
		w.late++
		w.mu.Unlock()
		return windows.ERROR_INVALID_HANDLE
	}
	w.resizing++
	w.resizes++
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.resizing--
		w.mu.Unlock()
	}()
	return w.prevSize(h, size)
}

// TestResizeAfterClose: the technician's frame reader runs on after the
// terminal closed its pseudo console, so a resize may come during the
// close or after it. None reaches the closed (freed) pseudo console.
func TestResizeAfterClose(t *testing.T) {
	w := watchConpty(t)
	s := newTestServer(t)
	for range 5 {
		c := startTestConsole(t, s)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range uint16(50000) { // bounded: a no-op once closed
				select {
				case <-stop:
					return
				default:
				}
				c.resize(24+i%10, 80)
			}
		}()
		c.kill() // closes the pseudo console, as wait does
		c.resize(30, 100)
		c.close()
		c.resize(30, 100)
		close(stop)
		<-done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.late > 0 || w.overlaps > 0 {
		t.Errorf("%d resizes of a closed pseudo console, %d closes during a resize (of %d resizes)", w.late, w.overlaps, w.resizes)
	}
	if w.resizes == 0 {
		t.Error("no resize reached an open pseudo console: the test saw nothing")
	}
}
