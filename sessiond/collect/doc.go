// Package collect gathers what an agent knows about its machine into a
// wire.Snapshot, the raw material of the readiness layer.
//
// sessiond calls Collect at every check-in with the collectors Host returns
// for the system it runs on (Linux: os-release, dpkg or rpm, apt-get, dnf or
// yum; Windows: the registry, the Windows Update Agent; macOS: sw_vers,
// system_profiler, softwareupdate), or with a Fixture standing in for
// another machine in demos and tests. Each collector fills its own part of the snapshot; one that fails
// is recorded in the snapshot's collector errors and the others still run,
// because a machine whose package database is locked is still worth knowing
// about.
//
// Load1 and Users are the heartbeat signals. They are cheap to read and are
// never stored in a snapshot: they describe the machine now, not what it
// is.
//
// Everything read from files is read below Config.Root, so tests can point a
// collector at a fixture tree instead of the machine they run on.
package collect
