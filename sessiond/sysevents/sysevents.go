package sysevents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is what happened to the machine.
type Kind int

// The kinds of Event.
const (
	Sleep    Kind = iota + 1 // the machine is about to suspend or hibernate
	Resume                   // it resumed (or a shutdown it announced was cancelled)
	Shutdown                 // it is about to shut down or reboot
	Metered                  // the connection's metered state changed (Event.Metered)
)

func (k Kind) String() string {
	switch k {
	case Sleep:
		return "sleep"
	case Resume:
		return "resume"
	case Shutdown:
		return "shutdown"
	case Metered:
		return "metered"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Event is one thing the system announced.
type Event struct {
	Kind Kind
	At   time.Time
	// Detail says more, in words a technician reads: for Sleep "lid
	// closed" when the system knows the lid is closed; for Shutdown
	// "reboot", "power-off" or "halt" when known; for Resume "shutdown
	// cancelled" when it follows a Shutdown rather than a Sleep; for
	// Metered what the connection is, "metered connection", "unmetered",
	// with "(guessed)" when the system guessed.
	Detail  string
	Reboot  bool // Shutdown: a reboot
	Metered bool // Metered: metered now

	hold *hold // the delay a Sleep or Shutdown holds; nil for the rest
}

// Release lets the system go on: it drops the delay inhibitor taken for a
// Sleep or Shutdown event. Safe to call more than once, and on events that
// hold nothing. The watcher releases by itself after Config.MaxDelay.
func (e Event) Release() { e.hold.release() }

// Config configures a Watcher. The zero value watches the system's own
// bus with the defaults below.
type Config struct {
	// Logger receives what cannot be watched and what was seen. Nil
	// means discard.
	Logger *slog.Logger
	// MaxDelay is how long a Sleep or Shutdown may be held before the
	// watcher releases it by itself: long enough for the agent to tell
	// the broker it is leaving, short enough that a closed lid still
	// means a sleeping machine. Zero means 3 s; logind itself lets no
	// delay last past its InhibitDelayMaxSec, 5 s unless configured.
	// Negative is an error.
	MaxDelay time.Duration
	// Bus is the Linux system bus's address. Empty means
	// $DBUS_SYSTEM_BUS_ADDRESS, else the standard system bus socket.
	// Other systems ignore it.
	Bus string
}

// DefaultMaxDelay is the MaxDelay a zero Config gets.
const DefaultMaxDelay = 3 * time.Second

// ErrConfig is wrapped by Start's error for a Config it cannot use.
var ErrConfig = errors.New("sysevents: bad config")

func (c Config) maxDelay() time.Duration {
	if c.MaxDelay == 0 {
		return DefaultMaxDelay
	}
	return c.MaxDelay
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Watcher delivers the machine's events until Close or its context ends.
type Watcher struct {
	// Immutable after Start.
	cfg    Config
	log    *slog.Logger
	events chan Event
	cancel context.CancelFunc
	done   chan struct{} // closed when the run goroutine has returned

	metered   atomic.Bool
	closeOnce sync.Once
}

// events is how many events wait for the reader before the watcher
// blocks; a Sleep waiting there is still released after MaxDelay.
const eventQueue = 16

// Start begins watching. It never fails for a missing bus or service: it
// logs once (Warn) what it cannot watch and delivers nothing for it; the
// error is for bad Config only.
func Start(ctx context.Context, cfg Config) (*Watcher, error) {
	if cfg.MaxDelay < 0 {
		return nil, fmt.Errorf("%w: MaxDelay %v is negative", ErrConfig, cfg.MaxDelay)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{
		cfg:    cfg,
		log:    cfg.logger(),
		events: make(chan Event, eventQueue),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(w.done)
		defer close(w.events)
		w.run(ctx)
	}()
	return w, nil
}

// Events delivers what happened, in order. It is closed after Close or
// when Start's context ends. Release every Sleep and Shutdown as soon as
// whatever must go out before the machine goes has gone.
func (w *Watcher) Events() <-chan Event { return w.events }

// Metered reports whether the connection is metered now, as last read;
// false while unknown (no reading yet, or nothing to read it from).
func (w *Watcher) Metered() bool { return w.metered.Load() }

// Close stops watching and releases whatever delay it still holds. The
// events channel is closed when it returns. It is safe to call more than
// once.
func (w *Watcher) Close() error {
	w.closeOnce.Do(w.cancel)
	<-w.done
	return nil
}

// deliver sends e to the reader, or releases it when ctx ends first.
func (w *Watcher) deliver(ctx context.Context, e Event) bool {
	select {
	case w.events <- e:
		w.log.Debug("sysevents: delivered", "kind", e.Kind, "detail", e.Detail)
		return true
	case <-ctx.Done():
		e.Release()
		return false
	}
}

// setMetered records a reading and delivers a Metered event when it
// differs from the last one (the first reading differs from false only
// when metered).
func (w *Watcher) setMetered(ctx context.Context, metered bool, detail string) {
	if w.metered.Swap(metered) == metered {
		return
	}
	w.log.Info("sysevents: the connection's metered state changed", "metered", metered, "detail", detail)
	w.deliver(ctx, Event{Kind: Metered, At: time.Now(), Detail: detail, Metered: metered})
}

// hold is one delay taken from the system for a Sleep or Shutdown: the
// inhibitor lock, closed by release or, at the latest, after MaxDelay.
type hold struct {
	once  sync.Once
	lock  io.Closer
	timer *time.Timer
	done  chan struct{} // closed on release
}

// newHold holds lock for at most max, logging through log when the time
// runs out before Release.
func newHold(lock io.Closer, max time.Duration, log *slog.Logger, what Kind) *hold {
	h := &hold{lock: lock, done: make(chan struct{})}
	h.timer = time.AfterFunc(max, func() {
		select {
		case <-h.done:
			return
		default:
		}
		log.Warn("sysevents: the delay ran out before the agent released it; letting the system go on", "kind", what, "max_delay", max)
		h.release()
	})
	return h
}

// release closes the lock once; nil holds nothing.
func (h *hold) release() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		h.timer.Stop()
		close(h.done)
		if h.lock != nil {
			h.lock.Close()
		}
	})
}

// released reports whether release ran.
func (h *hold) released() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}
