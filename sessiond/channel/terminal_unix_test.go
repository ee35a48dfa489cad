//go:build !windows

package channel

import (
	"testing"

	"github.com/creack/pty"

	"github.com/readymesh/readymesh/peer/wire"
)

// startTestConsole starts sh on a PTY, ended and closed when the test
// ends.
func startTestConsole(t *testing.T, s *Server) *console {
	t.Helper()
	argv, err := terminalShell(s.self, wire.ShellSh)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.startConsole(s.self, argv, "xterm", 24, 80)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.kill()
		c.wait()
		c.close()
	})
	return c
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
