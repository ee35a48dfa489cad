package meshctl

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// outModeSaved is the console output mode before the remote terminal took
// it over.
type outModeSaved struct {
	mode  uint32
	valid bool
}

// passEscapes turns on virtual-terminal processing for the console's
// output, so the remote shell's escape sequences (colours, cursor moves)
// are interpreted rather than printed. Windows 10 1511 and later have it.
// Output that is not a console (redirected to a file) is left alone.
func passEscapes(out *os.File) (outModeSaved, error) {
	h := windows.Handle(out.Fd())
	var mode uint32
	if windows.GetConsoleMode(h, &mode) != nil {
		return outModeSaved{}, nil
	}
	want := mode | windows.ENABLE_VIRTUAL_TERMINAL_PROCESSING | windows.DISABLE_NEWLINE_AUTO_RETURN
	if err := windows.SetConsoleMode(h, want); err != nil {
		return outModeSaved{}, fmt.Errorf("console output: virtual terminal processing: %w", err)
	}
	return outModeSaved{mode: mode, valid: true}, nil
}

func restoreOut(out *os.File, saved outModeSaved) {
	if saved.valid {
		windows.SetConsoleMode(windows.Handle(out.Fd()), saved.mode)
	}
}

// resizePoll is how often the console's size is compared with the last
// one sent. Windows has no SIGWINCH; a console's resize events arrive only
// in its input queue, which the input copy reads as bytes, so polling the
// size is the way that leaves input alone. A quarter second is below what
// a person dragging a window notices.
const resizePoll = 250 * time.Millisecond

// resizeWatcher polls the console's window size.
type resizeWatcher struct{}

func (resizeWatcher) run(c *localConsole, done <-chan struct{}, changed func(w, h int)) {
	t := time.NewTicker(resizePoll)
	defer t.Stop()
	lastW, lastH := c.size()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if w, h := c.size(); w != lastW || h != lastH {
				lastW, lastH = w, h
				changed(w, h)
			}
		}
	}
}
