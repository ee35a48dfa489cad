package wine

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/creack/pty"
)

// Running is a Windows program running under Wine on a terminal.
type Running struct {
	Cmd    *exec.Cmd
	master *os.File
	copied chan struct{}
}

// Start starts cmd (from Command) on a new terminal of 50 rows by 200
// columns. What it writes to the terminal goes to out, with the cursor
// codes and carriage returns Wine's console adds removed, so the output
// reads as the program's own.
func Start(cmd *exec.Cmd, out io.Writer) (*Running, error) {
	master, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		return nil, err
	}
	r := &Running{Cmd: cmd, master: master, copied: make(chan struct{})}
	go func() {
		defer close(r.copied)
		io.Copy(&consoleFilter{w: out}, master)
	}()
	return r, nil
}

// Wait waits for the program to exit and its output to be copied. The
// output copy gets 2 s after the exit: wineserver, started by the first
// program of a prefix, may hold the terminal open after it.
func (r *Running) Wait() error {
	err := r.Cmd.Wait()
	select {
	case <-r.copied:
	case <-time.After(2 * time.Second):
	}
	r.master.Close()
	<-r.copied
	return err
}

// Terminal is the terminal's controlling side, for a test that types
// into the program.
func (r *Running) Terminal() io.Writer { return r.master }

// consoleNoise is what Wine's console writes around every output: cursor
// hide and show, and erase to the end of the line.
var consoleNoise = [][]byte{[]byte("\x1b[?25l"), []byte("\x1b[?25h"), []byte("\x1b[K"), []byte("\r")}

// consoleFilter removes consoleNoise from a stream, also when a code is
// split across writes.
type consoleFilter struct {
	mu    sync.Mutex // mu guards carry: one writer at a time
	w     io.Writer
	carry []byte // the start of a code cut at the previous write's end
}

func (f *consoleFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := append(f.carry, p...)
	f.carry = nil
	for _, n := range consoleNoise {
		b = bytes.ReplaceAll(b, n, nil)
	}
	// Keep back a trailing prefix of a code for the next write.
	if i := bytes.LastIndexByte(b, 0x1b); i >= 0 && len(b)-i < 4 {
		f.carry = append([]byte(nil), b[i:]...)
		b = b[:i]
	}
	if _, err := f.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}
