// Package localdb is the agent's local database: one bbolt file (agent.db)
// in the agent's state directory that holds everything the agent must not
// forget across a restart. That is its enrolment (with the release key
// updates must be signed with) and the brokers it has learned, the
// check-in sequence and the last acknowledged check-in, its consent
// posture, the session grants it has used, the records of queued jobs it
// was asked to run, and its session and command history.
//
// Each of these is here for a promise the agent keeps after a crash or a
// reboot. The check-in sequence must never be reused for different content:
// the broker tells a retried check-in (same number, same content:
// acknowledged again, stored once) from a new one by it, so the counter is
// advanced and committed before a check-in is sent. A session grant is single
// use, so its use is committed before the session is accepted. A queued job
// runs at most once, so its start is committed before its script runs.
//
// The layout (bucket and key names, JSON values) is the on-disk format of
// agent.db and must stay readable by older and newer agents.
package localdb
