package service

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// State is a state the agent reports to its service manager.
type State int

// The states a running service reports; the manager itself reports
// stopped once Run returns.
const (
	StartPending State = iota + 1
	Running
	StopPending
)

func (s State) String() string {
	switch s {
	case StartPending:
		return "start-pending"
	case Running:
		return "running"
	case StopPending:
		return "stop-pending"
	}
	return "unknown"
}

// ErrStoppedByItself is what serve returns when the agent returned
// without being asked to stop and without an error: still a failure to
// the service manager, which then applies its recovery actions.
var ErrStoppedByItself = errors.New("the agent stopped without being asked to")

// serve runs run as a service whose manager asks it to stop through
// stop and hears its state through report: start-pending, running once
// run is under way, stop-pending when asked to stop (or ctx ends), after
// which run's context is cancelled and serve waits for it, so the agent
// closes its presence stream cleanly as it does on SIGTERM. It returns
// run's error; a cancelled run that returns nil or context.Canceled
// stopped cleanly.
func serve(ctx context.Context, run func(context.Context) error, stop <-chan struct{}, report func(State)) error {
	report(StartPending)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	report(Running)
	select {
	case err := <-done:
		if err == nil {
			err = ErrStoppedByItself
		}
		return err
	case <-stop:
	case <-ctx.Done():
	}
	report(StopPending)
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// SignalContext returns a context derived from parent that ends on the
// signals that mean "stop" to the agent (see stopSignals), and the
// function that releases them.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	managed, _ := Managed()
	return signal.NotifyContext(parent, stopSignals(managed)...)
}

// stopSignals are the signals that stop the agent: SIGINT, and SIGTERM
// (launchd's and systemd's stop) unless the Windows SCM started it. Go
// turns a service's CTRL_LOGOFF_EVENT into SIGTERM, and a service gets
// one whenever any user logs off; there only the SCM's Stop stops it.
func stopSignals(managed bool) []os.Signal {
	if managed {
		return []os.Signal{os.Interrupt}
	}
	return []os.Signal{os.Interrupt, syscall.SIGTERM}
}
