// Package bridge builds the libp2p hosts that carry a readymesh bridge: the
// one authenticated, multiplexed connection every agent and technician keeps
// to its broker.
//
// The bridge is a libp2p connection because libp2p gives us, in one place,
// what the control plane needs: both ends authenticated by their ed25519 keys
// (the peer ID is the identity), QUIC first with TCP and WebSocket transports
// for networks that block UDP, stream multiplexing with versioned protocol
// IDs, and a resource manager that bounds what each peer may hold. The
// broker's protocols (enrol, check-in, presence, login, technician requests)
// each run on their own streams; see package wire.
//
// Peers always dial brokers by a pinned peer ID learned from an enrolment or
// login token, so a host at the right address with the wrong key is refused
// by the libp2p handshake.
package bridge
