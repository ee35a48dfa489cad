// Package session is the broker's part in live sessions and the
// session-status layer.
//
// A technician asks the broker holding a machine's bridge for a session
// (Service.Open, or Service.Request from the web console). The broker
// checks the technician's scope and modes and that the machine is
// reachable here (another broker of the cluster answers with a redirect),
// signs a short-lived single-use grant with its key, carries the
// technician's offer to the agent over the bridge, and returns the agent's
// answer. The agent may first ask the person at the machine to approve:
// the request then waits, and a technician who goes away withdraws it.
// Every request goes into the audit log with its outcome; a rate limit per
// technician key bounds what requests cost agents.
//
// The data then flows directly between the two peers (package mesh), or
// through the broker's relay (package relay). The broker's STUN port tells
// both sides the addresses their session sockets are seen from, and serves
// TURN for WebRTC on the same port.
//
// Session status (Status) is the third layer of a machine card: what the
// agent last reported of its sessions (active, waiting for approval, mode,
// path, input paused) and the signals of its heartbeats (load, a person
// logged in). The agent is its source of truth; this broker keeps it only
// while the agent's presence stream is open here. When a session ends the
// agent files its transcript here, which only the agent the session was
// granted to may do.
package session
