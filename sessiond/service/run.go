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

// The causes with which the agent's context ends (context.Cause), so the
// agent can tell the broker why it is leaving.
var (
	// ErrShutdown: the machine is shutting down or restarting. The
	// Windows SCM says so with Shutdown or PreShutdown. On Linux and
	// macOS the service manager stops the agent with SIGTERM as for any
	// stop, so there the cause is ErrStopRequested, and the agent knows
	// of the shutdown from package sysevents' Shutdown event before it.
	ErrShutdown = errors.New("the machine is shutting down")
	// ErrStopRequested: the service manager (the SCM's Stop, SIGTERM
	// from systemd or launchd) or a person (SIGINT) asked the agent to
	// stop.
	ErrStopRequested = errors.New("the agent was asked to stop")
)

// serve runs run as a service whose manager asks it to stop through
// stop and hears its state through report: start-pending, running once
// run is under way, stop-pending when asked to stop (or ctx ends), after
// which run's context is cancelled and serve waits for it, so the agent
// closes its presence stream cleanly as it does on SIGTERM. What stop
// delivers is the cause run's context ends with (ErrShutdown,
// ErrStopRequested; a closed stop means ErrStopRequested); when ctx ends
// first, ctx's cause is. It returns run's error; a cancelled run that
// returns nil, context.Canceled or the cause stopped cleanly.
func serve(ctx context.Context, run func(context.Context) error, stop <-chan error, report func(State)) error {
	report(StartPending)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	report(Running)
	var cause error
	select {
	case err := <-done:
		if err == nil {
			err = ErrStoppedByItself
		}
		return err
	case cause = <-stop:
		if cause == nil {
			cause = ErrStopRequested
		}
	case <-ctx.Done():
		cause = context.Cause(ctx)
	}
	report(StopPending)
	cancel(cause)
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, cause) {
		return err
	}
	return nil
}

// SignalContext returns a context derived from parent that ends on the
// signals that mean "stop" to the agent (see stopSignals), with a cause
// that errors.Is ErrStopRequested and names the signal, and the function
// that releases them.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	managed, _ := Managed()
	return signalContext(parent, stopSignals(managed))
}

// signalContext is SignalContext for the given signals. Its goroutine
// ends when the context does, which the returned function ensures.
func signalContext(parent context.Context, sigs []os.Signal) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case s := <-ch:
			cancel(stopSignal{s})
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel(nil)
	}
}

// stopSignal is the cause of a context a stop signal ended.
type stopSignal struct{ sig os.Signal }

func (e stopSignal) Error() string {
	return ErrStopRequested.Error() + ": " + e.sig.String() + " signal received"
}
func (e stopSignal) Is(target error) bool { return target == ErrStopRequested }

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
