// Package backup is the file a broker backup is kept in, and the two
// things done with it: Write makes one from a store snapshot and the
// broker's key, Restore checks one and lays it down as a new data
// directory. `broker backup` and `broker restore` are their commands.
//
// A broker's store is replicated to every broker of its cluster, but a
// broker alone, or a cluster that loses every disk at once, or an operator
// who deleted what they should not have, needs a copy kept elsewhere. A
// store snapshot alone would restore the fleet under a new broker
// identity, and agents pin their brokers' peer IDs at enrolment: they
// would not trust it. So a backup carries the broker's key too (unless
// left out on purpose), and a restored broker is the same broker.
//
// # Format
//
// A backup is one tar file (archive/tar), so standard tools can list and
// extract it, holding in this order:
//
//	manifest.json  what the backup holds (Manifest): the broker's name and
//	               peer ID, the build that made it, when, the store's
//	               schema and machine count, and each part's size and
//	               SHA-256
//	broker.db      the store snapshot: a bbolt file (store.Store.Backup)
//	broker.key     the broker's identity key, unless left out
//
// Each part is named as its file in the data directory. The manifest comes
// first so that a reader knows every part's size and checksum before it
// reads the part. Write stages the snapshot next to the output file,
// checks it (store.CheckBackup), then writes the archive to a temporary
// file, syncs it, and renames it into place, mode 0600: a reader never
// sees half a backup, and a backup that could not be restored is never
// written. Restore reads every part into the data directory under a
// temporary name, checks its size and checksum, checks the snapshot and
// the key, and only then moves the parts into place; a backup that fails
// any check changes nothing.
//
// Not in a backup: admin.credential (the restored broker writes a new one
// at its first start; technicians' keys, the admin's included, stay bound
// in the store, so logged-in technicians keep working), broker.json
// (rewritten at every start), the gossip key file and the broker's flags
// (kept outside the data directory). The store carries everything else,
// this broker's own audit log and session transcripts included.
package backup
