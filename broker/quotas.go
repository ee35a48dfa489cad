package broker

import (
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/readymesh/readymesh/broker/replicate"
	"github.com/readymesh/readymesh/broker/session"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
)

// quotas bounds the request bytes each protocol may make the broker
// buffer at once (see bridge.Quota). Handlers reserve a request's
// announced length before reading it, so together with admission by key
// (protocols.go) and the incremental body read (wire.Reader.Body), what
// any caller can hold is its protocol's per-peer quota, and what all
// callers together can hold is the sum of the totals: about 400 MiB at the
// defaults, whatever they send.
//
// Enrolment and login are the protocols strangers may open, so their
// totals are small: keys cost nothing, and per-peer limits do not bound a
// caller with many keys.
func quotas(c *Config) map[protocol.ID]bridge.Quota {
	control := int64(wire.MaxControl)
	return map[protocol.ID]bridge.Quota{
		wire.ProtoEnroll:        {Total: 4 << 20, PerPeer: control},
		wire.ProtoLogin:         {Total: 4 << 20, PerPeer: control},
		wire.ProtoCheckIn:       {Total: c.CheckInMemory, PerPeer: 2 * int64(c.MaxSnapshot)},
		wire.ProtoPresence:      {Total: 32 << 20, PerPeer: control},
		wire.ProtoTech:          {Total: 16 << 20, PerPeer: 16 * control},
		wire.ProtoRelay:         {Total: 16 << 20, PerPeer: 16 * control},
		wire.ProtoSessionStatus: {Total: 16 << 20, PerPeer: 2 * control},
		wire.ProtoTranscript:    {Total: c.TranscriptMemory, PerPeer: int64(session.TranscriptSpec.MaxRequest)},
		replicate.Proto:         {Total: 4 * replicate.MaxRequest, PerPeer: replicate.MaxRequest},
		// A blob request is small; the bytes of an upload follow it and
		// are written chunk by chunk, never buffered whole.
		wire.ProtoRelease: {Total: 4 << 20, PerPeer: control},
	}
}
