// Package broker is the regional broker: the daemon every agent and
// technician of a region bridges to.
//
// A broker keeps the three layers of the console apart. Readiness is durable:
// every check-in is committed to the broker's bbolt store (package store)
// before it is acknowledged, and machine cards are computed from stored state
// (package readiness). Reachability is live: a machine is online while its
// presence stream is open and heartbeats arrive; a clean close shows offline
// at once and a silent loss within MissedHeartbeats heartbeats. Only
// last_seen is ever stored. Session status (active or waiting for approval,
// mode, path, input paused, busy) is what the agent last reported.
//
// The broker serves its protocols (package wire) on a libp2p host built by
// package bridge, and a small HTTP endpoint for health and Prometheus
// metrics. On start it writes broker.json (its peer ID and addresses) and,
// the first time, admin.credential into its data directory.
package broker
