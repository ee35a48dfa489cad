package service

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/windows/svc"

	"github.com/readymesh/readymesh/sessiond/sysevents"
)

// Managed reports whether the Service Control Manager started this
// process. (Under Wine it says no: Wine's services run outside session 0,
// which svc.IsWindowsService requires of services.exe.)
func Managed() (bool, error) { return svc.IsWindowsService() }

// Run runs run as the Windows service the SCM started: it reports
// start-pending, then running, and on Stop, Shutdown or PreShutdown
// (accepted so a later change can use the longer preshutdown time)
// reports stop-pending and cancels run's context, with ErrStopRequested
// or ErrShutdown as its cause, then waits for run. Power events go to
// package sysevents (sysevents.PowerEvent), whose watcher tells the agent
// of sleep and resume. An error from run becomes the service's exit code
// 1, which the recovery actions restart; Run also returns it.
func Run(ctx context.Context, run func(context.Context) error) error {
	h := &handler{ctx: ctx, run: run}
	if err := svc.Run(WindowsName, h); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return h.err
}

// handler is the svc.Handler that runs the agent.
type handler struct {
	ctx context.Context
	run func(context.Context) error
	err error // run's error, once Execute has returned
}

// Wait hints: how long the SCM should wait before it thinks the service
// hung in a pending state.
const (
	startWait = 30 * time.Second
	stopWait  = 30 * time.Second
)

// accepts are the controls a running agent takes.
const accepts = svc.AcceptStop | svc.AcceptShutdown | svc.AcceptPreShutdown | svc.AcceptPowerEvent

// Execute runs the agent through serve; a goroutine answers the SCM's
// requests meanwhile and ends before Execute returns.
func (h *handler) Execute(_ []string, reqs <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	stop, done := make(chan error, 1), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		answer(reqs, status, stop, done)
	}()
	h.err = serve(h.ctx, h.run, stop, func(s State) { status <- svcStatus(s) })
	close(done)
	wg.Wait()
	if h.err != nil {
		return true, 1
	}
	return false, 0
}

// answer answers interrogations with the last status, turns the first
// stop, shutdown or preshutdown into its cause on stop, and hands power
// events to sysevents, until done closes.
//
// A power event is handed over without waiting: the SCM's call to the
// control handler has returned before the request reaches here (see
// sysevents.PowerEvent), so holding it would delay nothing but the next
// request.
func answer(reqs <-chan svc.ChangeRequest, status chan<- svc.Status, stop chan<- error, done chan struct{}) {
	var once sync.Once
	stopWith := func(cause error) { once.Do(func() { stop <- cause }) }
	for {
		select {
		case <-done:
			return
		case r := <-reqs:
			switch r.Cmd {
			case svc.Interrogate:
				select {
				case status <- r.CurrentStatus:
				case <-done:
					return
				}
			case svc.Stop:
				stopWith(ErrStopRequested)
			case svc.Shutdown, svc.PreShutdown:
				stopWith(ErrShutdown)
			case svc.PowerEvent:
				sysevents.PowerEvent(r.EventType)
			}
		}
	}
}

// svcStatus is the SCM's form of s.
func svcStatus(s State) svc.Status {
	switch s {
	case StartPending:
		return svc.Status{State: svc.StartPending, WaitHint: uint32(startWait / time.Millisecond)}
	case Running:
		return svc.Status{State: svc.Running, Accepts: accepts}
	}
	return svc.Status{State: svc.StopPending, WaitHint: uint32(stopWait / time.Millisecond)}
}
