package sysevents

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// wait bounds every wait for the watcher; generous, since a failure
// shows as a timeout and success never waits for it.
const wait = 10 * time.Second

// logs is a slog handler that writes through t.Log and keeps each
// record's level and message for the test to check.
type logs struct {
	t    testing.TB
	mu   *sync.Mutex
	seen *[]string // "LEVEL message"
	done *bool     // the test has ended: t.Log would panic
}

func newLogs(t testing.TB) (*slog.Logger, *logs) {
	l := &logs{t: t, mu: new(sync.Mutex), seen: new([]string), done: new(bool)}
	t.Cleanup(func() {
		l.mu.Lock()
		*l.done = true
		l.mu.Unlock()
	})
	return slog.New(l), l
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }

func (l *logs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.seen = append(*l.seen, r.Level.String()+" "+r.Message)
	if !*l.done {
		l.t.Log(b.String())
	}
	return nil
}

func (l *logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logs) WithGroup(string) slog.Handler      { return l }

// count is how many records of level lv mention substr.
func (l *logs) count(lv slog.Level, substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range *l.seen {
		if strings.HasPrefix(s, lv.String()+" ") && strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

// waitFor waits until a record of level lv mentions substr, failing the
// test if none does within wait.
func (l *logs) waitFor(lv slog.Level, substr string) {
	l.t.Helper()
	deadline := time.Now().Add(wait)
	for l.count(lv, substr) == 0 {
		if time.Now().After(deadline) {
			l.t.Fatalf("no %v record mentioning %q", lv, substr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
