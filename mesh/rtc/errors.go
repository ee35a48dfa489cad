package rtc

import "errors"

// Errors callers branch on. Functions wrap them with the operation's name.
var (
	// ErrSDP is returned for a session description this package refuses:
	// too large, unparsable, without a data-channel section or without a
	// DTLS fingerprint.
	ErrSDP = errors.New("invalid session description")
	// ErrFailed is returned when the peer connection failed or closed
	// before both data channels opened.
	ErrFailed = errors.New("peer connection failed")
	// ErrClosed is returned by operations on a closed Offerer, Answerer or
	// Session.
	ErrClosed = errors.New("session closed")
	// ErrAccepted is returned by a second Offerer.Accept.
	ErrAccepted = errors.New("answer already accepted")
	// ErrAnswererEcho is returned by the answerer's Echo channel and Ping:
	// the answerer itself echoes on that channel.
	ErrAnswererEcho = errors.New("the echo channel is the offerer's to use")
)
