// Package store is the broker's durable state in one bbolt file: machine
// records with their latest snapshot and a bounded history, clients,
// enrolment tokens, technicians and their keys, the admin credential,
// queued jobs, published releases and the fleet's release key, and the
// fleet's metered-connection policies for agents, all replicated; and the
// broker's own audit log, session transcripts and release blobs
// (binaries, which brokers pull from each other on demand), which stay on
// the broker that holds them.
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
// full delay; the measurements are in the benchmark's comments. Every other
// write (control records, jobs, audit entries, transcripts, imports from
// other brokers) goes through the same writer.
//
// Writes are validated before they start and run in one transaction, so a
// refused write changes nothing. Machine records (without snapshots) are also
// kept in memory, updated after each commit, so a fleet listing never reads
// or decodes the file.
//
// # Replication
//
// Brokers share no database: each holds every record in its own store and
// they converge by anti-entropy (replicate.go). A broker sends its Digest
// (3 KB: 256 buckets, each a count and the xor of its records' version
// hashes); the other answers with the BucketVersions of each bucket that
// differs (DiffBuckets); the first asks for the records it Wants, and
// Imports what the other Exports. Run both ways, that leaves both with
// every record at its newest. The digest is kept up to date as writes
// commit (and rebuilt at Open), so a gossip round costs no file reads.
// Keys, versions and records travel as JSON, the digest as bytes; their
// decoders are strict and Import validates every record again (sizes,
// names, seq > 0, a snapshot that is exactly the bytes its digest names),
// refusing the whole batch, with nothing stored, if one record is bad.
//
// Conflicts resolve the same way on every broker, by these rules; each
// merge is commutative, associative and idempotent and never lowers what
// is stored (merge.go):
//
//   - Machines have three parts. Readiness (the latest check-in, its
//     snapshot and what is copied out of it) is ordered by the agent's
//     check-in seq: the higher seq wins; at equal seq (the same check-in,
//     committed by two brokers) the earlier commit wins, then the smaller
//     snapshot digest. The enrolment (name, client, enrolled_at) is written
//     once; if two brokers enrolled one machine differently the earlier
//     enrolment wins (then the smaller client, then name). last_seen is the
//     later of the two. History items merge as a set keyed by seq (at
//     equal seq the earlier item wins), of which the newest HistoryLimit
//     are kept; every broker must use the same HistoryLimit.
//   - Control records (clients, tokens, technicians, the admin credential,
//     jobs, policies…) carry a hybrid logical clock (clock.go): wall
//     milliseconds, a counter, and the origin broker's name as the final
//     tie-break. The later clock wins (last writer wins). Each broker's
//     clock moves past every clock it stores or imports, so a local write
//     always wins over what the broker has seen. Imported records stamped
//     more than Config.MaxClockSkew ahead of this broker's clock are
//     deferred. Two writes can carry one clock only if two brokers share a
//     name; then the greater content (its JSON) wins, so they still
//     converge.
//   - Jobs are control records with one exception: a job only moves
//     forward (queued, running, then an end, a result outranking a
//     cancellation or expiry), so the further state wins and the clock
//     decides only between copies equally far along (mergeJob in jobs.go).
//   - Deletions are tombstones: the record's name, the deletion's clock and
//     the incarnation it ended. A tombstone beats every older write and
//     loses to a newer one (creating the record again). Tombstones are kept
//     for Config.TombstoneTTL (30 days) after their clock; a broker away
//     longer must rejoin with an empty disk. No operation deletes records
//     yet; the format and the merge are ready for one.
//   - Token uses are a grow-only counter: how many uses each broker
//     consumed, merged by taking each broker's larger count; uses left are
//     the uses granted minus the sum. Uses never come back. Brokers cut off
//     from each other can each spend what they believe is the last use: a
//     token can be overused by what the other sides spent meanwhile (at
//     most its uses left at the split, once per side). Once they exchange
//     it is used up everywhere. Brokers that share a name share a counter
//     entry and undercount each other's uses: names must be unique.
//   - A technician's one-time login, once used on any broker, is used on
//     all (used wins), and the keys bound to a technician are the union of
//     those bound anywhere. Both hold within one incarnation of the record
//     (the clock of its creation): keys of a deleted technician do not come
//     back if it is created again, and of one name created on two sides of
//     a partition the later creation wins whole. The admin technician,
//     which every broker creates when it first starts, has one fixed
//     incarnation, so the keys bound to it on any broker are bound on all.
//     Like token uses, a one-time login can be used once on each side of a
//     partition.
//   - Lookups derived from records converge too: a machine name taken by
//     two machines (each enrolled on one side of a partition) belongs to
//     the earlier enrolment, and a key bound to two technicians resolves
//     to the smaller name; both records are kept.
//
// Config.Broker names this broker: it is the origin of its clocks and its
// entry in token counters, so it must be unique in the cluster.
//
// Layout (one top-level bucket each):
//
//	meta         schema version, the admin credential (AdminRecord)
//	clients      client name → ClientRecord
//	tokens       sha256(secret) → TokenRecord
//	machines     machine ID → Machine
//	names        client + "\x00" + name → machine ID (names are unique per client)
//	snapshots    machine ID → latest snapshot (JSON)
//	history      machine ID + "\x00" + slot (2 bytes) → HistoryItem, a ring per machine
//	technicians  name → TechnicianRecord
//	techkeys     peer ID → technician name
//	logins       sha256(login token) → technician name (unused logins only)
//	jobs         job ID → JobRecord
//	audit        sequence number (8 bytes) → AuditEntry, this broker's only
//	transcripts  machine ID + "/" + session + "/" + name → Transcript, this broker's only
//	transcript_order  sequence number (8 bytes) → transcript key, oldest first
//	removals     machine ID → RemovalRecord
//	releases     version → ReleaseRecord (the fleet's ReleaseKeyRecord is in meta)
//	rollouts     rollout ID → RolloutRecord
//	policies     "client:NAME" or "machine:PEERID" → PolicyRecord (also in memory: AgentPolicy)
//	blobs        sha256 (32 bytes) + chunk index (8 bytes) → chunk, this broker's only (blobs.go)
//	blob_meta    sha256 (32 bytes) → BlobMeta, this broker's only
//
// Control records and tombstones share their buckets; readers skip
// tombstones. Schema 1 files (before replication) are migrated in place at
// Open (migrate.go).
package store
