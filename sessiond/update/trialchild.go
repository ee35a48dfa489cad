package update

import (
	"context"
	"io"
)

// StopOnEOF returns a context derived from parent that ends when r (the
// stdin of a child on trial) ends: the watchdog closes it to stop the
// child, and it also ends when the watchdog dies, so a child never
// outlives its parent. The goroutine that reads r returns when r ends;
// nothing else can stop a read of stdin on every system.
func StopOnEOF(parent context.Context, r io.Reader) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		io.Copy(io.Discard, r)
		cancel()
	}()
	return ctx, cancel
}
