//go:build !windows

package ipc

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

func address(stateDir string) (string, error) {
	return filepath.Join(stateDir, SocketFile), nil
}

func listen(stateDir string) (net.Listener, error) {
	path, _ := address(stateDir)
	// A socket file left by a crashed agent would make Listen fail; the
	// caller holds the state directory, so no live agent owns it.
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

func dial(ctx context.Context, stateDir string) (net.Conn, error) {
	path, _ := address(stateDir)
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}
