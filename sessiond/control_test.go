package sessiond

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// flakyListener fails its first Accepts with errs, then returns conn,
// then waits until it is closed.
type flakyListener struct {
	errs   []error
	conn   net.Conn
	closed chan struct{}
	once   sync.Once

	mu sync.Mutex // guards at
	at []time.Time
}

func newFlakyListener(errs []error, conn net.Conn) *flakyListener {
	return &flakyListener{errs: errs, conn: conn, closed: make(chan struct{})}
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.at = append(l.at, time.Now())
	l.mu.Unlock()
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	default:
	}
	switch {
	case len(l.errs) > 0:
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, err
	case l.conn != nil:
		c := l.conn
		l.conn = nil
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *flakyListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *flakyListener) Addr() net.Addr { return &net.UnixAddr{Name: "flaky", Net: "unix"} }

// accepts returns when each Accept was called.
func (l *flakyListener) accepts() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.at...)
}

// TestServeControlRetriesAccept: Accept errors other than a closed
// listener (the Windows pipe listener's are transient) keep the control
// channel open: serveControl waits 5 ms, doubling up to 1 s, tries again
// and serves the connection that comes next. The failures are logged on
// the 1st, 2nd, 4th and 8th time, not each time.
func TestServeControlRetriesAccept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server, client := net.Pipe()
		defer server.Close()
		defer client.Close()
		errs := make([]error, 12)
		for i := range errs {
			errs[i] = errors.New("accept pipe: All pipe instances are busy.")
		}
		ln := newFlakyListener(errs, server)
		var logs bytes.Buffer
		a := &Agent{log: slog.New(slog.NewTextHandler(&logs, nil))}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.serveControl(ctx, ln)
		}()

		replies := make(chan controlReply, 1)
		go func() {
			var r controlReply
			if json.NewEncoder(client).Encode(controlRequest{Op: "no-such-op"}) == nil &&
				json.NewDecoder(client).Decode(&r) == nil {
				replies <- r
			}
		}()
		select {
		case <-done:
			t.Fatal("serveControl returned after a transient Accept error")
		case r := <-replies:
			if !strings.Contains(r.Error, "unknown op") {
				t.Errorf("reply %+v, want the unknown op refused", r)
			}
		}
		cancel()
		ln.Close()
		<-done

		at := ln.accepts()
		want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000}
		if len(at) != len(want)+2 {
			t.Fatalf("%d Accepts, want %d", len(at), len(want)+2)
		}
		for i, ms := range want {
			if gap := at[i+1].Sub(at[i]); gap != ms*time.Millisecond {
				t.Errorf("wait after failure %d: %v, want %v", i+1, gap, ms*time.Millisecond)
			}
		}
		if n := strings.Count(logs.String(), "accept failed"); n != 4 {
			t.Errorf("%d failures logged, want 4 (the 1st, 2nd, 4th and 8th):\n%s", n, logs.String())
		}
	})
}

// TestServeControlStopsDuringBackoff: serveControl waiting out an Accept
// failure returns as soon as ctx ends.
func TestServeControlStopsDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errs := make([]error, 100)
		for i := range errs {
			errs[i] = errors.New("transient")
		}
		ln := newFlakyListener(errs, nil)
		a := &Agent{log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.serveControl(ctx, ln)
		}()
		time.Sleep(3 * time.Second)
		start := time.Now()
		cancel()
		<-done
		if d := time.Since(start); d != 0 {
			t.Errorf("serveControl returned %v after ctx ended, want at once", d)
		}
	})
}
