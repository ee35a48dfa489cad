package ipc

import (
	"context"
	"net"
)

// SocketFile is the name of the control socket inside the state directory
// on Linux and macOS. Windows has no such file: see PipeName.
const SocketFile = "sessiond.sock"

// Listen opens the control channel of the agent whose state directory is
// stateDir. Only one agent may listen per state directory; the caller
// must already hold the directory (sessiond holds its local database's
// lock), since a Unix socket left by a crashed agent is removed first.
func Listen(stateDir string) (net.Listener, error) {
	return listen(stateDir)
}

// Dial connects to the control channel of the agent running on stateDir.
// ctx bounds the wait for a busy pipe on Windows; it does not bound the
// connection's later reads and writes (set a deadline for those).
func Dial(ctx context.Context, stateDir string) (net.Conn, error) {
	return dial(ctx, stateDir)
}

// Address is where the control channel of stateDir lives: the socket's
// path, or the pipe's name on Windows. Messages name it.
func Address(stateDir string) (string, error) {
	return address(stateDir)
}
