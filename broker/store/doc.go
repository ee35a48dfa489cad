// Package store is the broker's durable state in one bbolt file: machine
// records with their latest snapshot and a bounded history, clients,
// enrolment tokens, technicians and their keys.
//
// The store is the readiness layer's source of truth. Its contract with the
// rest of the broker is commit before acknowledge: CheckIn returns only after
// the transaction holding the snapshot has been written and fsynced, so an
// agent that got an acknowledgement never has to send that snapshot again,
// even if the broker is killed the next instant. Concurrent check-ins are
// group-committed by the store's one writer goroutine (writer.go): every
// write waiting when a commit ends goes into the next transaction, so many
// agents share one fsync. bbolt's own Batch cuts groups on a timer instead,
// which here kept groups small under load and made a lone agent wait the
// full delay; the measurements are in the benchmark's comments.
//
// Writes are validated before they start and run in one transaction, so a
// refused write changes nothing. Machine records (without snapshots) are also
// kept in memory, updated after each commit, so a fleet listing never reads
// or decodes the file.
//
// Layout (one top-level bucket each):
//
//	meta         schema version, admin credential hash
//	clients      client name → Client
//	tokens       sha256(secret) → Token
//	machines     machine ID → Machine
//	names        client + "\x00" + name → machine ID (names are unique per client)
//	snapshots    machine ID → latest snapshot (JSON)
//	history      machine ID + "\x00" + slot (2 bytes) → HistoryItem, a ring per machine
//	technicians  name → Technician
//	techkeys     peer ID → technician name
//	logins       sha256(login token) → technician name
package store
