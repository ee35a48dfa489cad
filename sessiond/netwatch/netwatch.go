package netwatch

import (
	"io"
	"log/slog"
	"time"
)

// DefaultDebounce is the debounce window when Config.Debounce is zero.
const DefaultDebounce = 2 * time.Second

// Config configures Watch. The zero value is usable.
type Config struct {
	// Debounce is how long Watch gathers events after the first one of a
	// burst before delivering one Change for all of them. Zero means 2
	// seconds: a DHCP renewal fires several events, and one check-in is
	// enough. Shorter reports a change sooner at the risk of two check-ins
	// for one change.
	Debounce time.Duration
	// Logger receives the watcher's logs. Nil discards them.
	Logger *slog.Logger
}

func (c Config) debounce() time.Duration {
	if c.Debounce <= 0 {
		return DefaultDebounce
	}
	return c.Debounce
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c.Logger
}

// Change reports that the network changed.
type Change struct {
	// At is when the debounce window closed and the Change was made.
	At time.Time
	// Events is how many kernel events were folded into this Change. It is
	// at least 1.
	Events int
}
