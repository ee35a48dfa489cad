package wire

import "github.com/libp2p/go-libp2p/core/protocol"

// Stream protocol IDs. The last path element is the protocol version; a broker
// may serve several versions of one protocol while agents upgrade.
const (
	// ProtoEnroll: agent → broker, once, to turn an enrolment token into a
	// machine record bound to the agent's peer ID.
	ProtoEnroll protocol.ID = "/readymesh/enroll/1.0.0"
	// ProtoCheckIn: agent → broker, one stream per check-in. The broker
	// answers only after the snapshot is committed to its store.
	ProtoCheckIn protocol.ID = "/readymesh/checkin/1.0.0"
	// ProtoPresence: agent → broker, one long-lived stream per bridge carrying
	// heartbeats. The machine is online while this stream is open and fresh.
	ProtoPresence protocol.ID = "/readymesh/presence/1.0.0"
	// ProtoLogin: technician → broker, to bind a technician key to a
	// technician record with a one-time login token or the admin credential.
	ProtoLogin protocol.ID = "/readymesh/login/1.0.0"
	// ProtoTech: technician → broker, one request and one reply per stream,
	// for queries and admin operations.
	ProtoTech protocol.ID = "/readymesh/tech/1.0.0"
)

// Protocol is the version of readymesh's wire protocols this build
// speaks, and MinProtocol the oldest version it still serves. Each request
// that opens a conversation (enrolment, presence, login, technician
// requests) carries its sender's Protocol, and each reply the receiver's;
// a sender outside the receiver's range is refused with a message naming
// both versions (ProtocolError). Senders of the first release sent no
// version: a missing one is 1.
//
// Raise Protocol when a message changes in a way an older peer cannot
// read; raise MinProtocol only when this build stops serving the older
// version, which breaks rolling upgrades from releases that speak only
// versions below it.
const (
	Protocol    = 1
	MinProtocol = 1
)

// Default limits on message sizes. A broker may configure larger ones.
const (
	// MaxSnapshot is the default limit on an encoded check-in (1 MiB).
	MaxSnapshot = 1 << 20
	// MaxControl is the limit on every other message (64 KiB).
	MaxControl = 64 << 10
	// MaxReply is the limit a client puts on replies it reads (64 MiB), large
	// enough for a machine list of 100k cards.
	MaxReply = 64 << 20
)

// ProtoRevoke: broker → agent, one Revocation and one Reply: a
// technician's access ended, so the agent ends its sessions and refuses
// the grants it was issued before. Every broker tells the agents bridged
// to it.
const ProtoRevoke protocol.ID = "/readymesh/revoke/1.0.0"
