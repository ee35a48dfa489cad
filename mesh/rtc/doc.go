// Package rtc carries a live session between a technician and an agent over
// a WebRTC data-channel connection (pion/webrtc).
//
// WebRTC is the path a browser can take too, and its ICE machinery finds a
// route through NATs on its own: host candidates for peers on one network,
// server-reflexive candidates (learned from the broker's STUN service, see
// package turnserver) for hole punching, and relay candidates on the
// broker's TURN service for the symmetric NATs that defeat punching. DTLS
// authenticates the peers by certificate fingerprint, which the signalling
// layer binds to identities it already trusts (see Fingerprints).
//
// Signalling is not this package's business: the technician (offerer) calls
// Offer and hands the SDP to the agent through the broker; the agent calls
// Answer and hands its SDP back; the offerer calls Accept. Candidates are
// gathered completely before an SDP is returned (no trickle ICE), so one
// message each way suffices. The cost is that setup waits for gathering,
// which GatherTimeout bounds.
//
// Each session has two ordered, reliable data channels, negotiated out of
// band with fixed IDs so neither side waits for an in-band open handshake:
//
//   - "echo": the answerer writes every message back. The offerer measures
//     round trips on it (Session.Ping) and checks that the peer answers.
//   - "bytes": a byte stream for bulk transfer and measurement.
//
// The agent's own channels (a terminal, an exec, a file transfer) are
// opened in-band by the offerer, the way a browser opens them
// (Session.OpenChannel), and taken by the answerer with
// Session.AcceptChannel.
//
// pion's ICE waits before it nominates a server-reflexive, peer-reflexive
// or relay pair, so that a better pair found a moment later can win. Its
// defaults (0.5 s, 1 s, 2 s) add up to seconds of setup on links where
// every check completes in milliseconds; Config shortens them (see
// Config.RelayWait for the trade-off).
package rtc
