package meshctl

import (
	"os"
	"testing"
)

// TestConsoleRawAndBack takes the test's console (a terminal: the Wine
// harness runs tests on one) into raw mode with virtual-terminal output,
// reads its size, starts and stops the resize watcher, and gives it back.
func TestConsoleRawAndBack(t *testing.T) {
	c, err := openConsole(os.Stdin, os.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	if c == nil {
		t.Fatal("stdin is not a console: run this test on one (make wine-test does)")
	}
	defer c.restore()
	if !c.outMode.valid {
		t.Error("console output mode was not saved: virtual-terminal output not turned on")
	}
	w, h := c.size()
	if w <= 0 || h <= 0 {
		t.Fatalf("console size %dx%d", w, h)
	}
	sizes, stop := c.watchResize()
	stop()
	if _, open := <-sizes; open {
		t.Error("resize channel still open after stop")
	}
}
