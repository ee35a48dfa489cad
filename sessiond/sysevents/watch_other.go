//go:build !linux && !windows

package sysevents

import (
	"context"
	"runtime"
)

// run delivers nothing: this system's sleep, shutdown and metered
// notices need cgo (see the package doc). It says so once and waits.
func (w *Watcher) run(ctx context.Context) {
	w.log.Warn("sysevents: sleep, shutdown and metered networks go unnoticed on " + runtime.GOOS)
	<-ctx.Done()
}
