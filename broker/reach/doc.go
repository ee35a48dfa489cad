// Package reach is the reachability layer: which machines have a control
// channel open to this broker right now, and, through the cluster's
// gossip, to which other broker.
//
// Reachability is ephemeral, a network signal and never a health verdict.
// A machine is online while its presence stream is open and heartbeats
// arrive; a clean close shows it offline at once, a silent loss after
// Config.MissedHeartbeats intervals. The table lives in memory. The only
// trace it leaves in the store is last_seen, written when a machine goes
// offline and every Config.LastSeenFlush while it is online.
//
// The signals a heartbeat carries (load, a person logged in) are session
// status, not reachability: they are handed to the session-status table
// (the Signals interface) and never kept here.
//
// When the broker is in a cluster, every machine coming or going is
// announced to the other brokers (Announcer), and a machine bridged to
// another broker shows online through it (Directory). The presence stream
// also tells each agent the brokers it may fail over to: the hello reply
// lists them, and a heartbeat ack lists them again whenever the cluster's
// membership changed (brokerlist.go).
//
// Why a machine is away (asleep, shut down, stopped, quiet, lost) is a
// note in memory too, spread through the cluster (away.go). It is a
// network signal, not readiness, so it is never stored. But a broker that
// runs alone and restarts would otherwise forget every note, and every
// closed lid would show as away for an unknown reason, which the offline
// alert counts as lost: a routine restart would page the MSP for each
// sleeping laptop. So a clean stop hands the notes to the next start in a
// small file in the data directory, which the next start reads and
// deletes before it serves (notesfile.go). A crash keeps nothing.
package reach
