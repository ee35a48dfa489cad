package store

import "errors"

// Errors callers branch on. Each is wrapped with the operation's detail.
var (
	ErrNotFound       = errors.New("not found")
	ErrExists         = errors.New("already exists")
	ErrTokenUnknown   = errors.New("unknown token")
	ErrTokenExpired   = errors.New("token expired")
	ErrTokenUsedUp    = errors.New("token used up")
	ErrNameTaken      = errors.New("name already taken in this client")
	ErrUnknownMachine = errors.New("machine is not enrolled")
	ErrSequence       = errors.New("check-in sequence out of order")
	// ErrNeedFull refuses a compact snapshot whose package list cannot be
	// filled from the stored snapshot: the agent must send it whole.
	ErrNeedFull = errors.New("compact snapshot refused: send it whole")
	// ErrMalformed marks a record, version, key or digest that fails
	// validation (from another broker, or a local write that could not be
	// replicated).
	ErrMalformed = errors.New("malformed record")
)
