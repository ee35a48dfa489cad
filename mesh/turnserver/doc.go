// Package turnserver is the broker's STUN and TURN service for WebRTC
// sessions between technicians and agents.
//
// Two peers behind NAT need two things from a server both can reach. STUN
// Binding answers tell each peer the address its NAT gives it towards the
// internet (its server-reflexive candidate), which is what makes hole
// punching possible. When both NATs map per destination ("symmetric", common
// in carrier-grade and corporate NAT) no punched hole works, and ICE falls
// back to a TURN relay: the server allocates a UDP socket for the peer and
// forwards packets between it and the other side. The broker already runs on
// a reachable address, so it runs this service too rather than depending on
// a third party's.
//
// Relaying costs the broker bandwidth, so only holders of credentials minted
// by the broker (Credentials, TURN REST style: an expiry and an HMAC of it
// under a secret only the broker knows) may allocate, and the number of
// open allocations is capped. STUN Binding needs no credentials.
//
// The protocol engine is pion/turn; this package decides who may allocate,
// on which address relay sockets open, how many there may be, and counts
// what they carry.
package turnserver
