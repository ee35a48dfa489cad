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
// at most twice the limit.
type LogFile struct {
	path string // immutable
	max  int64  // immutable

	mu   sync.Mutex // guards the following
	f    *os.File
	size int64
}

// OpenLog opens path for appending, moving it aside at max bytes; zero
// means LogMax.
func OpenLog(path string, max int64) (*LogFile, error) {
	if max <= 0 {
		max = LogMax
	}
	l := &LogFile{path: path, max: max}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *LogFile) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log file: %w", err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends p, one log record, moving the file aside first if p
// would take it past the limit.
func (l *LogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	if l.size > 0 && l.size+int64(len(p)) > l.max {
		if err := l.rotateLocked(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// rotateLocked moves the file to path.1 and opens a new one. The file is
// closed first: Windows renames no open file. If the move fails the file
// is reopened and grows on: a log past its limit beats no log.
func (l *LogFile) rotateLocked() error {
	l.f.Close()
	l.f = nil
	os.Rename(l.path, l.path+".1")
	return l.open()
}

// Close closes the file.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
