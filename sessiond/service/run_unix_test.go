//go:build !windows

package service

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalContextCause: a stop signal ends the context with a cause
// that is ErrStopRequested and names the signal; the release function
// ends it with no such cause.
func TestSignalContextCause(t *testing.T) {
	ctx, stop := signalContext(context.Background(), []os.Signal{syscall.SIGUSR1})
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the signal did not end the context")
	}
	cause := context.Cause(ctx)
	if !errors.Is(cause, ErrStopRequested) || !strings.Contains(cause.Error(), "user defined signal 1") {
		t.Errorf("cause %v, want ErrStopRequested naming the signal", cause)
	}

	ctx, stop = signalContext(context.Background(), []os.Signal{syscall.SIGUSR2})
	stop()
	<-ctx.Done()
	if errors.Is(context.Cause(ctx), ErrStopRequested) {
		t.Errorf("released without a signal, cause %v; want no stop request", context.Cause(ctx))
	}
}
