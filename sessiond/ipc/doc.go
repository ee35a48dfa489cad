// Package ipc is the local channel between the commands a person types at
// the machine (sessiond status, checkin, requests, approve, deny,
// pause-input) and the agent running there. The agent listens; each
// command dials, sends one JSON request and reads one reply (package
// sessiond speaks that protocol; this package only carries it).
//
// On Linux and macOS the channel is a Unix socket in the state directory:
// the directory is mode 0700 and the socket 0600, so only the agent's
// owner (and root) can open it.
//
// On Windows it is a named pipe, since a state directory there is guarded
// by its ACL and not by modes. The pipe's name is derived from the state
// directory (PipeName), so each agent has its own and the commands find it
// from --state alone. Its DACL (PipeSDDL) admits the agent's own account,
// SYSTEM and Administrators, the Windows counterpart of the Unix socket's
// owner-and-root; remote clients are refused. The pipe namespace is
// global, so a dialler also checks who owns the pipe it reached
// (TrustedOwner): a pipe made by any other account is refused before a
// byte is sent.
//
// The Windows listener uses CreateNamedPipe and ConnectNamedPipe from
// golang.org/x/sys/windows and hands each connected instance to os.NewFile,
// which since Go 1.25 serves overlapped handles through the runtime's
// poller, deadlines included. github.com/Microsoft/go-winio was tried
// first: under Wine 8 its listener's placeholder instance is connectable,
// so a client connects to an instance no Accept serves and hangs (its own
// TestDialListenerTimesOut and TestFullListenDialReadWrite fail there),
// while the plain pattern here works under Wine too, so the Windows tests
// of this package run in CI.
package ipc
