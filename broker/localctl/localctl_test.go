package localctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// logBuf collects a server's log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a served socket in a fresh directory.
type testServer struct {
	*Server
	path string
	log  *logBuf
	stop func() // cancels Serve and waits for it
}

// serve listens with cfg (Path filled in), lets register add handlers,
// and serves until the test ends or stop is called.
func serve(t *testing.T, cfg Config, register func(s *Server)) *testServer {
	t.Helper()
	cfg.Path = filepath.Join(t.TempDir(), SocketFile)
	lb := &logBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(lb, nil))
	s, err := Listen(cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if register != nil {
		register(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var once sync.Once
	ts := &testServer{Server: s, path: cfg.Path, log: lb}
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Serve did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(func() {
		ts.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", lb)
		}
	})
	return ts
}

func callT(t *testing.T, path, op string, args, result any, stream io.Writer) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Call(ctx, path, op, args, result, stream)
}

func TestCallResult(t *testing.T) {
	ts := serve(t, Config{}, func(s *Server) {
		s.Handle("echo", func(_ context.Context, args json.RawMessage, _ io.Writer) (any, error) {
			var in struct{ Word string }
			if err := json.Unmarshal(args, &in); err != nil {
				return nil, err
			}
			return map[string]string{"said": in.Word}, nil
		})
		s.Handle("nothing", func(context.Context, json.RawMessage, io.Writer) (any, error) { return nil, nil })
	})
	var out struct{ Said string }
	if err := callT(t, ts.path, "echo", map[string]string{"word": "hello"}, &out, nil); err != nil || out.Said != "hello" {
		t.Fatalf("echo: %+v, %v", out, err)
	}
	if err := callT(t, ts.path, "nothing", nil, nil, nil); err != nil {
		t.Fatalf("nothing: %v", err)
	}
}

// TestStream: a stream arrives byte for byte, whatever the sizes of the
// handler's writes, followed by the result.
func TestStream(t *testing.T) {
	data := make([]byte, 3<<20+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	ts := serve(t, Config{}, func(s *Server) {
		s.Handle("dump", func(_ context.Context, _ json.RawMessage, w io.Writer) (any, error) {
			for rest := data; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(200<<10))
				if _, err := w.Write(rest[:n]); err != nil {
					return nil, err
				}
				rest = rest[n:]
			}
			return map[string]int{"bytes": len(data)}, nil
		})
	})
	var got bytes.Buffer
	var res struct{ Bytes int }
	if err := callT(t, ts.path, "dump", nil, &res, &got); err != nil {
		t.Fatalf("dump: %v", err)
	}
	if !bytes.Equal(got.Bytes(), data) || res.Bytes != len(data) {
		t.Fatalf("got %d bytes (result %d), want %d identical", got.Len(), res.Bytes, len(data))
	}
	// A caller that takes no stream is told so, rather than left with a
	// silently dropped one.
	if err := callT(t, ts.path, "dump", nil, nil, nil); err == nil || !strings.Contains(err.Error(), "stream") {
		t.Errorf("dump without a stream writer: %v", err)
	}
}

// TestOperationErrors: a refusal, a failure in the middle of a stream and
// a panic each reach the caller as an *Error, never as success.
func TestOperationErrors(t *testing.T) {
	ts := serve(t, Config{}, func(s *Server) {
		s.Handle("refuse", func(context.Context, json.RawMessage, io.Writer) (any, error) {
			return nil, errors.New("not today")
		})
		s.Handle("half", func(_ context.Context, _ json.RawMessage, w io.Writer) (any, error) {
			w.Write(make([]byte, 100<<10))
			return nil, errors.New("disk on fire")
		})
		s.Handle("panic", func(context.Context, json.RawMessage, io.Writer) (any, error) {
			panic("boom")
		})
	})
	for op, want := range map[string]string{"refuse": "not today", "half": "disk on fire", "panic": "internal error"} {
		err := callT(t, ts.path, op, nil, nil, io.Discard)
		var e *Error
		if !errors.As(err, &e) || e.Op != op || e.Msg != want {
			t.Errorf("%s: %v, want an *Error saying %q", op, err, want)
		}
	}
	if !strings.Contains(ts.log.String(), "panicked") {
		t.Errorf("the panic was not logged:\n%s", ts.log)
	}
}

// TestBadRequests: requests that are not understood are refused with a
// reason, logged, and never reach a handler.
func TestBadRequests(t *testing.T) {
	var calls atomic.Int32
	ts := serve(t, Config{MaxRequest: 1024, RequestTimeout: 500 * time.Millisecond}, func(s *Server) {
		s.Handle("op", func(context.Context, json.RawMessage, io.Writer) (any, error) {
			calls.Add(1)
			return nil, nil
		})
	})
	tests := []struct {
		name, send string
		close      bool // close the write side after sending
		want       string
	}{
		{"not JSON", "hello\n", false, "not JSON"},
		{"unknown field", `{"op":"op","extra":1}` + "\n", false, "unknown field"},
		{"trailing data", `{"op":"op"} {"op":"op"}` + "\n", false, "after its JSON"},
		{"unknown op", `{"op":"nosuch"}` + "\n", false, `unknown operation "nosuch"`},
		{"bad op name", `{"op":"../../etc"}` + "\n", false, "not valid"},
		{"empty op", `{}` + "\n", false, "not valid"},
		{"too long", `{"op":"op","args":"` + strings.Repeat("x", 2000) + `"}` + "\n", false, "longer than 1024"},
		{"no newline", `{"op":"op"}`, true, "without a newline"},
		{"silent", "", false, "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("unix", ts.path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tc.send)
			if tc.close {
				c.(*net.UnixConn).CloseWrite()
			}
			h, err := readHeader(bufio.NewReader(c))
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			if !strings.Contains(h.Error, tc.want) {
				t.Errorf("reply %+v, want an error saying %q", h, tc.want)
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the handler ran %d times", n)
	}
	if n := strings.Count(ts.log.String(), "bad request"); n != len(tests) {
		t.Errorf("%d bad requests logged, want %d:\n%s", n, len(tests), ts.log)
	}
}

// TestMaxConns: callers beyond MaxConns are told the broker is busy at
// once; once a slot frees, calls go through again.
func TestMaxConns(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	ts := serve(t, Config{MaxConns: 2}, func(s *Server) {
		s.Handle("hold", func(ctx context.Context, _ json.RawMessage, _ io.Writer) (any, error) {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		})
	})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := callT(t, ts.path, "hold", nil, nil, nil); err != nil {
				t.Errorf("held call: %v", err)
			}
		})
	}
	<-entered
	<-entered
	var e *Error
	if err := callT(t, ts.path, "hold", nil, nil, nil); !errors.As(err, &e) || !strings.Contains(e.Msg, "busy") {
		t.Errorf("third call while two are held: %v, want busy", err)
	}
	close(release)
	wg.Wait()
	if err := callT(t, ts.path, "hold", nil, nil, nil); err != nil {
		t.Errorf("call after the others ended: %v", err)
	}
}

// TestShutdownCutsStream: stopping the server in the middle of a stream
// ends the handler and gives the caller an error, not a short success;
// the socket file is gone afterwards.
func TestShutdownCutsStream(t *testing.T) {
	writing := make(chan struct{})
	handlerDone := make(chan error, 1)
	ts := serve(t, Config{}, func(s *Server) {
		s.Handle("endless", func(ctx context.Context, _ json.RawMessage, w io.Writer) (any, error) {
			close(writing)
			buf := make([]byte, 32<<10)
			for i := 0; i < 100000; i++ { // bounded: 3 GiB
				if _, err := w.Write(buf); err != nil {
					handlerDone <- err
					return nil, err
				}
			}
			handlerDone <- nil
			return nil, nil
		})
	})
	callErr := make(chan error, 1)
	go func() {
		// A reader that keeps up but never finishes.
		callErr <- callT(t, ts.path, "endless", nil, nil, io.Discard)
	}()
	<-writing
	time.Sleep(50 * time.Millisecond)
	ts.stop()
	if err := <-handlerDone; err == nil {
		t.Error("the handler finished its stream after shutdown")
	}
	if err := <-callErr; err == nil || !strings.Contains(err.Error(), "before it was complete") {
		t.Errorf("Call during shutdown: %v, want a cut stream", err)
	}
	if _, err := os.Lstat(ts.path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after shutdown: %v", err)
	}
}

// TestSlowReaderCutOff: a caller that stops reading does not hold the
// operation longer than WriteTimeout.
func TestSlowReaderCutOff(t *testing.T) {
	handlerDone := make(chan error, 1)
	ts := serve(t, Config{WriteTimeout: 200 * time.Millisecond}, func(s *Server) {
		s.Handle("big", func(_ context.Context, _ json.RawMessage, w io.Writer) (any, error) {
			buf := make([]byte, 64<<10)
			for i := 0; i < 1024; i++ { // 64 MiB, far beyond socket buffers
				if _, err := w.Write(buf); err != nil {
					handlerDone <- err
					return nil, err
				}
			}
			handlerDone <- nil
			return nil, nil
		})
	})
	c, err := net.Dial("unix", ts.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, `{"op":"big"}`+"\n")
	select {
	case err := <-handlerDone:
		if err == nil {
			t.Fatal("the handler wrote 64 MiB to a caller that read nothing")
		}
		t.Logf("handler cut off: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the handler was still writing 10s after its caller stopped reading")
	}
}

func TestSocketFile(t *testing.T) {
	ts := serve(t, Config{}, nil)
	fi, err := os.Lstat(ts.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}

	// A socket left by a crashed broker is replaced.
	dir := t.TempDir()
	path := filepath.Join(dir, SocketFile)
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if err := Call(context.Background(), path, "x", nil, nil, nil); !errors.Is(err, ErrNoServer) {
		t.Errorf("Call on a stale socket: %v, want ErrNoServer", err)
	}
	s, err := Listen(Config{Path: path})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	s.ln.Close()

	// Anything else at the path is left alone.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep"), 0o600)
	if _, err := Listen(Config{Path: file}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if raw, _ := os.ReadFile(file); string(raw) != "keep" {
		t.Error("Listen changed a regular file")
	}
	if err := Call(context.Background(), filepath.Join(dir, "none"), "x", nil, nil, nil); !errors.Is(err, ErrNoServer) {
		t.Errorf("Call on a missing socket: %v, want ErrNoServer", err)
	}
}

func TestCallCancelled(t *testing.T) {
	ts := serve(t, Config{}, func(s *Server) {
		s.Handle("wait", func(ctx context.Context, _ json.RawMessage, _ io.Writer) (any, error) {
			<-ctx.Done()
			return nil, nil
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := Call(ctx, ts.path, "wait", nil, nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Call past its deadline: %v", err)
	}
}

func TestHandleRefusesBadNames(t *testing.T) {
	ts := serve(t, Config{}, nil)
	noop := func(context.Context, json.RawMessage, io.Writer) (any, error) { return nil, nil }
	ts.Handle("ok-op", noop)
	for _, name := range []string{"", "Upper", "has space", strings.Repeat("a", 65), "ok-op"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Handle(%q) did not panic", name)
				}
			}()
			ts.Handle(name, noop)
		}()
	}
}

// TestNoGoroutineLeak: once Serve returns, nothing it started runs.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("serve", func(t *testing.T) {
		ts := serve(t, Config{}, func(s *Server) {
			s.Handle("op", func(context.Context, json.RawMessage, io.Writer) (any, error) { return nil, nil })
		})
		for i := range 20 {
			if err := callT(t, ts.path, "op", nil, nil, nil); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		// One connection left open mid-request.
		c, err := net.Dial("unix", ts.path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, `{"op":`)
		time.Sleep(20 * time.Millisecond)
		ts.stop()
	})
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Serve returned, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestPeerAllowedSelf(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := net.Dial("unix", filepath.Join(dir, "s")); err == nil {
			time.Sleep(100 * time.Millisecond)
			c.Close()
		}
	}()
	c, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if uid, ok := peerAllowed(c); !ok {
		t.Errorf("a caller of this process's own account (uid %d, ours %d) was refused", uid, os.Geteuid())
	}
}
