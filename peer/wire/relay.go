package wire

import (
	"errors"
)

// RelayHello opens one side of a relayed session.
type RelayHello struct {
	Session string `json:"session"`
}

// Validate implements the Decode contract.
func (h *RelayHello) Validate() error {
	if len(h.Session) != 32 {
		return errors.New("relay session ID is not 32 hex digits")
	}
	return nil
}

// RelayReady tells a relay side that both sides are joined (or why not).
type RelayReady struct {
	Error *Error `json:"error,omitempty"`
}
