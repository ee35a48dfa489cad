// Package update is the agent's side of signed updates: it checks an
// update order against the release key the agent pinned, downloads the
// release's binary over the bridge, stages it next to the running
// executable, and runs the new binary on trial under the watch of the old
// one, which commits it or puts the old one back.
//
// An update channel runs code on every endpoint, so a broken or hostile
// release must never replace the known-good binary. Two rules keep that
// promise. The binary is accepted only when the manifest that names it
// verifies against the pinned key and its SHA-256 and size match the
// manifest (Check, Fetcher, Stage). And the watchdog lives in the old
// binary: the running agent stops its own core and, in the same process,
// becomes the trial parent (Run). It starts EXE.new as a child with the
// same arguments and environment plus READYMESH_UPDATE_TRIAL=1 and
// READYMESH_UPDATE_EXE (the executable it replaces: on macOS and Windows
// a program's own path is the name it was started by). The child reads
// and removes both (FromWatchdog), so nothing it starts inherits them; it
// logs to its stderr, which the parent writes to its own log, so one
// process writes and rotates the log file. The child, on trial, checks in
// with reason "updated" (only if its version is the one on trial); once
// that check-in is acknowledged it pins the release's next key, if any,
// and writes the healthy marker. Only then does the parent commit: EXE
// is kept as EXE.previous (a hard link, else a copy), then EXE.new is
// renamed over EXE, so EXE is there at every moment; Windows refuses to
// replace a running program's file, so there EXE is renamed aside and
// EXE.new to EXE, undone (or EXE copied back from EXE.previous) if the
// second rename fails. The commit counts only when EXE then holds the
// release's binary. The parent stays on as a thin parent that relays
// stop to the child. A child that exits before it is healthy is started
// again, up to three starts (EXE.new is checked against the release
// before each); one that does not become healthy within the health
// window is stopped. Either way the parent makes sure EXE is there,
// deletes EXE.new and runs the agent itself again, and its first
// check-in says "rolled-back" and why. A stop of the parent itself (a
// service stop, a reboot) gives the child's start back: it did not fail.
//
// One watchdog per state directory: every sessiond run that is not a
// child of a watchdog holds Dir/lock (flock, LockFileEx) for its life, so
// a second one is refused. A committed child that stages a later update
// watches it nested inside its own parent, under the same lock.
//
// The trial's state is a file (Dir/trial.json) written before the child
// first starts, so a parent that dies (a reboot, a service restart) is
// replaced by the service manager's start of EXE, which is still the old
// binary: it finds the file and resumes the trial, counting starts, or
// rolls back when the health window has passed. The service manager is
// thus the last line, not the mechanism: the hand-over needs no restart
// by it, and an agent run by hand updates the same way.
//
// Stop reaches the child through its stdin on every system: the child on
// trial reads stdin and stops at its end (WatchStdin). Closing that pipe
// is the one signal Windows and Unix share, and it also fires when the
// parent dies, so a child never outlives its watchdog. The parent kills a
// child that has not stopped after a grace period.
//
// The files in Dir are a contract between two builds of the agent, the
// old binary that watches and the new one on trial, so their names and
// JSON fields must stay readable by both:
//
//	trial.json    the trial in progress (Trial)
//	healthy       written by the child: the trial's ID
//	outcome.json  the last update's outcome and whether it was reported (Outcome)
//	lock          held by the watchdog (TakeLock)
//	SHA256.part   a download in progress
package update
