// Package pionlog adapts pion's leveled loggers to log/slog for the
// packages of mesh that run pion (rtc, turnserver).
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory adapts pion's leveled loggers to slog. pion logs routine events
// (a closed socket during teardown, an unreachable candidate, every TURN
// permission) at its warn and error levels, so every line goes out at slog
// debug with pion's level and scope as attributes, and pion's trace below
// debug. The callers' own logs say what an operator needs.
type Factory struct {
	Log *slog.Logger
}

var (
	_ logging.LoggerFactory = Factory{}
	_ logging.LeveledLogger = pionScope{}
)

// NewLogger implements logging.LoggerFactory.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	return pionScope{log: f.Log.With("pion", scope)}
}

type pionScope struct {
	log *slog.Logger
}

// levelTrace sits below slog.LevelDebug so that a debug handler skips it.
const levelTrace = slog.LevelDebug - 4

func (s pionScope) emit(level slog.Level, pionLevel string, format string, args []any) {
	ctx := context.Background()
	if !s.log.Enabled(ctx, level) {
		return
	}
	msg := format
	if args != nil {
		msg = fmt.Sprintf(format, args...)
	}
	s.log.Log(ctx, level, msg, "pion_level", pionLevel)
}

func (s pionScope) Trace(msg string)                  { s.emit(levelTrace, "trace", msg, nil) }
func (s pionScope) Tracef(format string, args ...any) { s.emit(levelTrace, "trace", format, args) }
func (s pionScope) Debug(msg string)                  { s.emit(slog.LevelDebug, "debug", msg, nil) }
func (s pionScope) Debugf(format string, args ...any) { s.emit(slog.LevelDebug, "debug", format, args) }
func (s pionScope) Info(msg string)                   { s.emit(slog.LevelDebug, "info", msg, nil) }
func (s pionScope) Infof(format string, args ...any)  { s.emit(slog.LevelDebug, "info", format, args) }
func (s pionScope) Warn(msg string)                   { s.emit(slog.LevelDebug, "warn", msg, nil) }
func (s pionScope) Warnf(format string, args ...any)  { s.emit(slog.LevelDebug, "warn", format, args) }
func (s pionScope) Error(msg string)                  { s.emit(slog.LevelDebug, "error", msg, nil) }
func (s pionScope) Errorf(format string, args ...any) { s.emit(slog.LevelDebug, "error", format, args) }
