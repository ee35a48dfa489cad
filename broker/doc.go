// Package broker is the regional broker: the daemon every agent and
// technician of a region bridges to. It is an assembly of rooms, one
// package per concern, each given the store, a clock, a logger and small
// interfaces of what it needs from the others, never the Broker:
//
//   - readiness, the durable layer: store (bbolt, one record per machine),
//     checkin (the intake; acknowledged after commit) and readiness (the
//     rules and queue order);
//   - reach, the reachability layer: the presence table, heartbeats,
//     last_seen, and announcements to the cluster;
//   - session, the session-status layer and the broker's part in live
//     sessions: grants, consent, rate limits, transcripts, STUN and TURN;
//   - relay, the data path's last resort: spliced, end-to-end encrypted
//     session bytes;
//   - queue (work planned from stored state, run when the machine is
//     there), alerts, replicate (every record on every broker), cluster
//     and brokers (gossip, and the broker list peers see), enrol (tokens,
//     enrolment, login), audit and scope (what a technician may see), and
//     console (the web console: API, event streams, embedded app).
//
// What stays here is the joining: New builds the rooms in dependency
// order (assemble.go), Run starts and stops them, protocols.go registers
// each stream protocol with the room that serves it, optable.go maps each
// technician operation to the room that answers it, and card.go is the
// one place where the three layers meet in a machine card.
//
// The broker serves its protocols (package wire) on a libp2p host built by
// package bridge, and HTTP for health, Prometheus metrics and the console.
// On start it writes broker.json (its peer ID and addresses) and, the
// first time, admin.credential into its data directory.
package broker
