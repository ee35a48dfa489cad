package netwatch

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// startDebounce runs debounce with a 2 s window on fake time and returns
// its input, its output and a channel closed when it returns.
func startDebounce(ctx context.Context) (chan int, chan Change, chan struct{}) {
	in := make(chan int)
	out := make(chan Change, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		debounce(ctx, in, 2*time.Second, out)
	}()
	return in, out, done
}

func TestDebounceFoldsABurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		in, out, done := startDebounce(ctx)
		defer func() { cancel(); <-done }()
		start := time.Now()
		// A DHCP renewal: address removed and re-added, route replaced.
		for _, n := range []int{1, 2, 1} {
			in <- n
			time.Sleep(300 * time.Millisecond)
		}
		c := <-out
		if c.Events != 4 || c.At.Sub(start) != 2*time.Second {
			t.Errorf("got %+v after %v, want 4 events after 2s", c, c.At.Sub(start))
		}
		synctest.Wait()
		select {
		case c := <-out:
			t.Errorf("second change %+v for one burst", c)
		default:
		}
	})
}

func TestDebounceSeparateBursts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		in, out, done := startDebounce(ctx)
		defer func() { cancel(); <-done }()
		in <- 1
		first := <-out
		time.Sleep(10 * time.Second)
		in <- 3
		second := <-out
		if first.Events != 1 || second.Events != 3 || second.At.Sub(first.At) != 12*time.Second {
			t.Errorf("got %+v then %+v", first, second)
		}
	})
}

// TestDebounceWindowNotExtended checks that steady events still produce a
// Change each window.
func TestDebounceWindowNotExtended(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		in, out, done := startDebounce(ctx)
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for i := 0; i < 50; i++ {
				select {
				case in <- 1:
				case <-ctx.Done():
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		c := <-out
		if c.Events != 20 {
			t.Errorf("first window folded %d events, want 20", c.Events)
		}
		cancel()
		<-sent
		<-done
	})
}

func TestDebounceStops(t *testing.T) {
	tests := []struct {
		name string
		stop func(cancel context.CancelFunc, in chan int, out chan Change)
	}{
		{"context", func(cancel context.CancelFunc, in chan int, _ chan Change) {
			in <- 1
			cancel()
		}},
		{"input closed", func(_ context.CancelFunc, in chan int, _ chan Change) {
			close(in)
		}},
		{"while nobody reads", func(cancel context.CancelFunc, in chan int, out chan Change) {
			out <- Change{} // fill the buffer so the next send blocks
			in <- 1
			time.Sleep(3 * time.Second)
			synctest.Wait()
			cancel()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				in, out, done := startDebounce(ctx)
				tt.stop(cancel, in, out)
				<-done
			})
		})
	}
}
