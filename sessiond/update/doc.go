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
// same arguments and environment plus READYMESH_UPDATE_TRIAL=1. The
// child, on trial, checks in with reason "updated"; once that check-in is
// acknowledged it writes the healthy marker. Only then does the parent
// commit, by renames (EXE → EXE.previous, EXE.new → EXE), and it stays
// on as a thin parent that relays stop to the child. A child that exits
// before it is healthy is started again, up to three starts; one that
// does not become healthy within the health window is stopped. Either way
// the parent deletes EXE.new and runs the agent itself again, and its
// first check-in says "rolled-back" and why.
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
//	SHA256.part   a download in progress
package update
