package wire

import (
	"errors"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProtoTranscript: agent → broker, one Transcript per stream after a
// session ends (→ Reply).
const ProtoTranscript protocol.ID = "/readymesh/transcript/1.0.0"

// OpTranscript reads a session's transcripts: TranscriptArgs → []Transcript.
const OpTranscript = "transcript"

// MaxTranscript bounds one uploaded transcript (16 MiB).
const MaxTranscript = 16 << 20

// Transcript is one terminal's recording (asciicast v2).
type Transcript struct {
	Session string    `json:"session"`
	Name    string    `json:"name"` // SESSION-N.cast
	Machine string    `json:"machine,omitempty"`
	At      time.Time `json:"at"`
	Cast    []byte    `json:"cast"` // base64 in JSON: terminal output is any bytes
}

// Validate implements the Decode contract.
func (t *Transcript) Validate() error {
	if len(t.Session) != 32 || t.Name == "" || len(t.Name) > 64 || strings.ContainsAny(t.Name, "/\\") {
		return errors.New("transcript: bad session or name")
	}
	return nil
}

// TranscriptArgs names a session (its ID or first digits).
type TranscriptArgs struct {
	Session string `json:"session"`
}

// Validate implements the Decode contract.
func (a *TranscriptArgs) Validate() error {
	if len(a.Session) < 6 || len(a.Session) > 32 {
		return errors.New("session: give at least its first 6 digits")
	}
	return nil
}
