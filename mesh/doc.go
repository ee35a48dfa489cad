// Package mesh is the data path of live sessions between a technician and
// an agent: grants, candidate gathering, UDP hole punching, direct QUIC,
// the relayed path through the broker, and moving a session from the relay
// to a direct path without dropping it. WebRTC sessions are in mesh/rtc,
// the broker's TURN server in mesh/turnserver.
//
// The shape follows from three facts about the networks agents sit on.
//
// First, libp2p's own NAT traversal does not fit MSP networks: identify
// adds an observed address only after four observers (an agent talks to
// one broker), and libp2p classes private, CGNAT and TEST-NET addresses as
// unroutable and will not punch to them, though that is what an MSP's
// "outside" often is. So the broker observes addresses itself (Observer,
// a STUN responder whose token ties a technician's STUN request to its
// session request) and the two sides punch with their own probes: STUN
// binding requests authenticated as ICE connectivity checks are, sent from
// the very socket QUIC uses (a NAT maps each local port on its own).
// quic-go hands those non-QUIC packets to Transport.ReadNonQUICPacket, so
// one socket serves both.
//
// Second, a session must survive the move from relay to direct. libp2p's
// circuit relay would give a relayed libp2p connection, whose streams
// cannot move to another connection, and its defaults (2 minutes,
// 128 KiB) are sized for coordination. Here the relay carries the
// session's own QUIC packets, framed on each side's bridge stream and
// spliced by the broker, and a pump on each side presents the relay to the
// session socket as one more UDP address. Moving to the direct path is
// then QUIC connection migration: the technician's pathConn points the
// connection's virtual address at the punched one, and the agent's server
// validates the new path and switches.
//
// Third, every hop but the two ends is untrusted. The grant, signed by the
// broker, names both peer IDs; each side presents a TLS certificate made
// from its ed25519 identity key and pins the other's. The relay and the
// broker see ciphertext only.
package mesh
