package service

import (
	"fmt"
	"os"
	"sync"
)

// LogMax is the size at which a LogFile is moved aside.
const LogMax = 10 << 20

// LogFile is the agent's log when nothing collects its output (a Windows
// service has no stderr). It appends to its file and, once the file would
// pass its limit, moves it to the same name with ".1" (replacing the
// older one) and starts a new one, so a service that runs for a year keeps
// at most twice the limit. If the new file cannot be opened (a full disk,
// a directory briefly locked), the log has no file until a later record's
// write opens one: each write tries once, and fails with the reason.
type LogFile struct {
	path string // immutable
	max  int64  // immutable

	// testHookOpen, set by tests only, runs before every open of the
	// file; its error fails that open.
	testHookOpen func() error

	mu     sync.Mutex // guards the following
	f      *os.File   // nil after Close, or after an open that failed
	size   int64
	closed bool // Close was called: no write opens the file again
}

// OpenLog opens path for appending, moving it aside at max bytes; zero
// means LogMax.
func OpenLog(path string, max int64) (*LogFile, error) {
	if max <= 0 {
		max = LogMax
	}
	l := &LogFile{path: path, max: max}
	if err := l.open(); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return l, nil
}

// open opens the file for appending and notes its size.
func (l *LogFile) open() error {
	if l.testHookOpen != nil {
		if err := l.testHookOpen(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends p, one log record, moving the file aside first if p
// would take it past the limit, or opening it again if an earlier move
// left the log without one.
func (l *LogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	if err := l.prepareLocked(len(p)); err != nil {
		return 0, err
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// prepareLocked leaves an open file with room for n more bytes, or its
// limit passed by one record at most. It opens the file at most once: a
// write never waits on more than one failing open.
func (l *LogFile) prepareLocked(n int) error {
	switch {
	case l.f == nil:
		if err := l.open(); err != nil {
			return fmt.Errorf("log file: reopening after a failed rotation: %w", err)
		}
	case l.size > 0 && l.size+int64(n) > l.max:
		if err := l.rotateLocked(); err != nil {
			return fmt.Errorf("log file: rotating: %w", err)
		}
	}
	return nil
}

// rotateLocked moves the file to path.1 and opens a new one. The file is
// closed first: Windows renames no open file. If the move fails the file
// is reopened and grows on: a log past its limit beats no log. If the
// open fails, the log is left without a file for the next write to open.
func (l *LogFile) rotateLocked() error {
	l.f.Close()
	l.f = nil
	os.Rename(l.path, l.path+".1")
	return l.open()
}

// Close closes the file; later writes fail with os.ErrClosed.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
