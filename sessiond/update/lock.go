package update

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// LockFile is the watchdog's lock in Dir.
const LockFile = "lock"

// ErrLocked refuses a second watchdog on one state directory.
var ErrLocked = errors.New("another sessiond run (the agent or the watchdog of its update) is using this state directory")

// Lock is the exclusive lock a watchdog holds on Dir(stateDir)/lock for
// its whole life. Two watchdogs on one state directory would each commit
// or roll back the same trial; the agent's database lock does not keep a
// second one out, since a watchdog does not hold the database while its
// child runs. The system releases the lock when the process ends, however
// it ends, and children do not inherit it.
type Lock struct{ f *os.File }

// TakeLock takes the lock of stateDir, waiting up to wait for a process
// that holds it to end (a service restart); then it fails with ErrLocked.
func TakeLock(stateDir string, wait time.Duration) (*Lock, error) {
	if err := os.MkdirAll(Dir(stateDir), 0o700); err != nil {
		return nil, fmt.Errorf("update: lock: %w", err)
	}
	path := filepath.Join(Dir(stateDir), LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("update: lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		held, err := tryLock(f)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !held || !time.Now().Before(deadline) {
			f.Close()
			if held {
				return nil, fmt.Errorf("%w (%s is locked)", ErrLocked, stateDir)
			}
			return nil, fmt.Errorf("update: lock %s: %w", path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Release releases the lock.
func (l *Lock) Release() error { return l.f.Close() }
