package sysevents

import (
	"context"
	"errors"
	"log/slog"
	"testing"
)

// TestConfig: a negative MaxDelay is refused; zero means the default.
func TestConfig(t *testing.T) {
	if _, err := Start(context.Background(), Config{MaxDelay: -1}); !errors.Is(err, ErrConfig) {
		t.Errorf("Start with a negative MaxDelay: %v, want ErrConfig", err)
	}
	if got := (Config{}).maxDelay(); got != DefaultMaxDelay {
		t.Errorf("zero MaxDelay means %v, want %v", got, DefaultMaxDelay)
	}
}

// TestReleaseNothing: Release on an event that holds nothing, and twice
// on one that does, is safe.
func TestReleaseNothing(t *testing.T) {
	Event{Kind: Resume}.Release()
	closed := 0
	h := newHold(closerFunc(func() error { closed++; return nil }), DefaultMaxDelay, slog.New(slog.DiscardHandler), Sleep)
	e := Event{Kind: Sleep, hold: h}
	e.Release()
	e.Release()
	if closed != 1 || !h.released() {
		t.Errorf("the lock closed %d times, want once", closed)
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
