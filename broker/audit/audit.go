// Package audit is the broker's audit log: every session request with its
// outcome, sessions' starts and ends, policy changes, queued work and
// console sign-ins, appended to the store (the newest store.AuditLimit
// entries) and read back within a technician's scope.
//
// A failure to record is logged loudly but does not undo what happened:
// the log describes the broker's actions, it does not gate them.
package audit

import (
	"log/slog"
	"strings"
	"time"

	"github.com/readymesh/readymesh/broker/scope"
	"github.com/readymesh/readymesh/peer/wire"
)

// Store is where entries are kept.
type Store interface {
	Audit(wire.AuditEntry) error
	AuditLog(limit int, keep func(*wire.AuditEntry) bool) ([]wire.AuditEntry, error)
}

// Log appends to and reads the audit log.
type Log struct {
	store Store
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Log on st. log may be nil (discard); now nil means
// time.Now.
func New(st Store, log *slog.Logger, now func() time.Time) *Log {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Log{store: st, log: log, now: now}
}

// Add appends e, stamped now if it has no time.
func (l *Log) Add(e wire.AuditEntry) {
	if e.At.IsZero() {
		e.At = l.now().UTC()
	}
	if err := l.store.Audit(e); err != nil {
		l.log.Error("audit log", "err", err, "event", e.Event, "session", e.Session)
	}
}

// Query answers OpAudit: admins read every entry, other technicians the
// entries of machines in their scope, newest first.
func (l *Log) Query(t *wire.Technician, a *wire.AuditArgs) ([]wire.AuditEntry, *wire.Error) {
	if a.Limit == 0 {
		a.Limit = 100
	}
	keep := func(e *wire.AuditEntry) bool {
		if !scope.AuditVisible(t, e) {
			return false
		}
		return (a.Machine == "" || e.Machine == a.Machine || strings.HasSuffix(e.Machine, "/"+a.Machine)) &&
			(a.Session == "" || strings.HasPrefix(e.Session, a.Session))
	}
	es, err := l.store.AuditLog(a.Limit, keep)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	return es, nil
}
