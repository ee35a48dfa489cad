// Package lastrun tells the agent, when it starts, how its previous run
// ended and what happened while it was away.
//
// A grey dot on a technician's console is only useful when it says which
// kind of grey it is. A run that was stopped cleanly said so on its way
// out (Stopped); a run that vanished did not, and the next one is the
// only witness left. So the agent keeps a small marker in its state
// directory that it refreshes while it runs (Alive, a hint written
// without fsync), and rewrites with a reason when it stops (Stopped,
// fsynced, since the shutdown that follows may cut the power). At the
// next start Open reads it: a marker without a stop means the run ended
// uncleanly, and Open says when it was last known alive and, when
// anything recorded it, how it ended.
//
// Two witnesses say how. The Go runtime writes an unhandled panic or a
// fatal error, in any goroutine, to the crash file Open hands to
// runtime/debug.SetCrashOutput, so the next run finds "panic: ..." there.
// The service manager may write the exit status it saw (the systemd unit
// does, through ExecStopPost) to ExitStatusFile; Open reads it and
// deletes it. When neither has anything (kill -9, the power went), the
// detail says so plainly.
//
// Open also compares the machine's boot time with when the previous run
// was last alive, so the agent can tell a reboot from a restart.
package lastrun
