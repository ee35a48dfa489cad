package meshctl

import (
	"os"

	"golang.org/x/term"
)

// localConsole is the technician's own terminal while a remote terminal
// has it: raw input, and output that passes the remote side's escape
// sequences through.
type localConsole struct {
	in, out *os.File
	state   *term.State   // stdin's mode before raw
	outMode outModeSaved  // stdout's mode before (Windows only)
	resize  resizeWatcher // how size changes are noticed on this system
}

// openConsole puts the local terminal in raw mode. It returns nil, and no
// error, when stdin is not a terminal (a script piped in): then the
// remote terminal reads and writes the streams as they are.
func openConsole(in, out *os.File) (*localConsole, error) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		return nil, nil
	}
	st, err := term.MakeRaw(fd)
	if err != nil {
		return nil, err
	}
	c := &localConsole{in: in, out: out, state: st}
	if c.outMode, err = passEscapes(out); err != nil {
		term.Restore(fd, st)
		return nil, err
	}
	return c, nil
}

// restore gives the terminal back as it was. A nil console does nothing.
func (c *localConsole) restore() {
	if c == nil {
		return
	}
	restoreOut(c.out, c.outMode)
	term.Restore(int(c.in.Fd()), c.state)
}

// size is the terminal's width and height, 80x24 when the system does not
// say.
func (c *localConsole) size() (w, h int) {
	for _, f := range []*os.File{c.out, c.in} {
		if w, h, err := term.GetSize(int(f.Fd())); err == nil && w > 0 && h > 0 {
			return w, h
		}
	}
	return 80, 24
}

// watchResize delivers the terminal's new width and height after each
// change until stop is called; stop waits for the watcher to end and
// closes the channel.
func (c *localConsole) watchResize() (sizes <-chan [2]int, stop func()) {
	out := make(chan [2]int, 1)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer close(out)
		c.resize.run(c, done, func(w, h int) {
			select {
			case out <- [2]int{w, h}:
			default: // a newer size follows; the reader is behind
			}
		})
	}()
	return out, func() {
		close(done)
		<-finished
	}
}
