//go:build !windows

package channel

import (
	"testing"

	"github.com/creack/pty"

	"github.com/readymesh/readymesh/peer/wire"
)

// testShell is the shell startTestConsole starts.
const testShell = wire.ShellSh

// endTestConsole kills the shell, reaps it and closes the PTY.
func endTestConsole(c *console) {
	c.kill()
	c.wait()
	c.close()
}

// watchSize returns a function that reads c's size back from its PTY.
func watchSize(t *testing.T, c *console) func() (rows, cols int) {
	return func() (int, int) {
		rows, cols, err := pty.Getsize(c.pty)
		if err != nil {
			t.Fatalf("PTY size: %v", err)
		}
		return rows, cols
	}
}
