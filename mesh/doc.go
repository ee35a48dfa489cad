// Package mesh will be the data path between a technician and an agent:
// candidate gathering, UDP hole punching, direct QUIC (quic-go) and WebRTC
// data channels (pion), relay fallback through the broker, and upgrading a
// session from a relayed to a direct path without dropping it.
//
// Not built yet. The control plane (brokers, bridges, readiness and
// reachability) comes first; live sessions are the next milestone. Until
// then this package holds only this description, so nothing here should be
// mistaken for a working transport.
package mesh
