package turnserver

import "errors"

// Errors callers branch on. New wraps them with the reason.
var (
	// ErrConfig is returned by New for an invalid Config.
	ErrConfig = errors.New("invalid turnserver config")
	// ErrClosed is returned by Close when the server's workers did not stop
	// in time; the sockets are closed regardless.
	ErrClosed = errors.New("turnserver did not stop in time")
)
