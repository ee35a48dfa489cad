package cluster

import "errors"

// Errors callers branch on. Functions wrap them with the operation's name.
var (
	// ErrClosed is returned by operations on a closed Cluster.
	ErrClosed = errors.New("cluster closed")
	// ErrTooLarge is returned when a broadcast or metadata does not fit
	// the gossip packet budget (see MaxBroadcast and Meta).
	ErrTooLarge = errors.New("too large for gossip")
	// ErrKeyFile is returned by LoadKeyFile for a key file it refuses.
	ErrKeyFile = errors.New("bad gossip key file")
	// ErrConfig is returned by New for an invalid Config.
	ErrConfig = errors.New("invalid cluster config")
)
