//go:build !windows

package meshctl

import (
	"os"
	"os/signal"
	"syscall"
)

// outModeSaved is nothing here: terminals on Unix pass escapes through.
type outModeSaved struct{}

func passEscapes(*os.File) (outModeSaved, error) { return outModeSaved{}, nil }

func restoreOut(*os.File, outModeSaved) {}

// resizeWatcher follows SIGWINCH, which the kernel sends on every size
// change of the controlling terminal.
type resizeWatcher struct{}

func (resizeWatcher) run(c *localConsole, done <-chan struct{}, changed func(w, h int)) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	for {
		select {
		case <-done:
			return
		case <-winch:
			changed(c.size())
		}
	}
}
