package service

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// reports collects the states serve reports.
type reports struct {
	mu     sync.Mutex
	states []State
	seen   chan State
}

func newReports() *reports { return &reports{seen: make(chan State, 8)} }

func (r *reports) report(s State) {
	r.mu.Lock()
	r.states = append(r.states, s)
	r.mu.Unlock()
	r.seen <- s
}

func (r *reports) got() []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.states)
}

// TestServeStop: asked to stop, serve reports stop-pending before the
// agent has finished, cancels the agent's context and waits for it, and
// a clean stop is no error.
func TestServeStop(t *testing.T) {
	for _, how := range []string{"stop request", "context"} {
		r := newReports()
		stop := make(chan error)
		ctx, cancel := context.WithCancel(context.Background())
		release := make(chan struct{})
		var cancelled bool
		run := func(ctx context.Context) error {
			<-ctx.Done()
			cancelled = true
			<-release // the agent closes its presence stream
			return ctx.Err()
		}
		done := make(chan error, 1)
		go func() { done <- serve(ctx, run, stop, r.report) }()
		for _, want := range []State{StartPending, Running} {
			if s := <-r.seen; s != want {
				t.Fatalf("%s: reported %v, want %v", how, s, want)
			}
		}
		if how == "context" {
			cancel()
		} else {
			close(stop)
		}
		if s := <-r.seen; s != StopPending {
			t.Fatalf("%s: reported %v, want stop-pending", how, s)
		}
		select {
		case err := <-done:
			t.Fatalf("%s: serve returned %v before the agent finished", how, err)
		case <-time.After(10 * time.Millisecond):
		}
		close(release)
		if err := <-done; err != nil || !cancelled {
			t.Errorf("%s: serve = %v, agent's context cancelled %v; want nil, true", how, err, cancelled)
		}
		if want := []State{StartPending, Running, StopPending}; !slices.Equal(r.got(), want) {
			t.Errorf("%s: reported %v, want %v", how, r.got(), want)
		}
		cancel()
	}
}

// TestServeFailure: an agent that ends by itself is a failure the service
// manager must hear about, with its error, or ErrStoppedByItself; an
// error while stopping is returned too.
func TestServeFailure(t *testing.T) {
	broken := errors.New("sessiond: localdb: agent.db is locked")
	for _, tc := range []struct {
		name string
		run  func(context.Context) error
		stop bool
		want error
	}{
		{"error", func(context.Context) error { return broken }, false, broken},
		{"nil", func(context.Context) error { return nil }, false, ErrStoppedByItself},
		{"error while stopping", func(ctx context.Context) error { <-ctx.Done(); return broken }, true, broken},
	} {
		r := newReports()
		stop := make(chan error)
		if tc.stop {
			close(stop)
		}
		err := serve(context.Background(), tc.run, stop, r.report)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: serve = %v, want %v", tc.name, err, tc.want)
		}
		if got := r.got(); len(got) < 2 || got[0] != StartPending || got[1] != Running {
			t.Errorf("%s: reported %v, want start-pending, running first", tc.name, got)
		}
	}
}

// TestStopSignals: under the Windows SCM a SIGTERM (a user logging off)
// does not stop the agent; elsewhere it does.
func TestStopSignals(t *testing.T) {
	if got := stopSignals(true); slices.Contains(got, os.Signal(syscall.SIGTERM)) || len(got) == 0 {
		t.Errorf("stop signals under the SCM: %v, want SIGINT alone (and never none: Notify with none relays all)", got)
	}
	if got := stopSignals(false); !slices.Contains(got, os.Signal(syscall.SIGTERM)) || !slices.Contains(got, os.Interrupt) {
		t.Errorf("stop signals of a plain process: %v, want SIGINT and SIGTERM", got)
	}
}

// TestServeCause: the agent's context ends with the cause the service
// manager gave (a closed stop meaning a stop request), or with the
// cause of the context serve was given; an agent that returns that cause
// stopped cleanly.
func TestServeCause(t *testing.T) {
	parentCause := errors.New("sessiond: the parent ended")
	for _, tc := range []struct {
		name string
		stop func(chan error, context.CancelCauseFunc)
		want error
	}{
		{"shutdown", func(c chan error, _ context.CancelCauseFunc) { c <- ErrShutdown }, ErrShutdown},
		{"stop", func(c chan error, _ context.CancelCauseFunc) { c <- ErrStopRequested }, ErrStopRequested},
		{"closed", func(c chan error, _ context.CancelCauseFunc) { close(c) }, ErrStopRequested},
		{"parent", func(_ chan error, cancel context.CancelCauseFunc) { cancel(parentCause) }, parentCause},
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		stop := make(chan error, 1)
		var got error
		run := func(ctx context.Context) error {
			<-ctx.Done()
			got = context.Cause(ctx)
			return got
		}
		r := newReports()
		done := make(chan error, 1)
		go func() { done <- serve(ctx, run, stop, r.report) }()
		<-r.seen
		<-r.seen // running
		tc.stop(stop, cancel)
		if err := <-done; err != nil {
			t.Errorf("%s: serve = %v, want nil: the agent returned its context's cause", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: the agent's context ended with %v, want %v", tc.name, got, tc.want)
		}
		cancel(nil)
	}
}
