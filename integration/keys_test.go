package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKeyFilePermissions checks that every binary refuses a key file that
// others may read or write, says so, and works again once the mode is
// fixed: a key that may have been copied must not be used silently.
func TestKeyFilePermissions(t *testing.T) {
	needBinaries(t)
	base := testDir(t)
	b := startBroker(t, base, "keys", 300*time.Millisecond)
	admin := b.admin(base)
	admin.ok("clients", "create", "acme")
	a := enroll(t, base, admin.token("acme", 1, time.Hour).Token, "kiosk", "windows-ready.json")

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		t.Run(fmt.Sprintf("mode %04o", mode), func(t *testing.T) {
			agentKey := filepath.Join(a.dir, "agent.key")
			chmod(t, agentKey, mode)
			r := runCmd(t, exitTimeout, nil, bins.sessiond, a.runArgs()...)
			wantRefusal(t, "sessiond run", r, agentKey)

			techKey := filepath.Join(admin.home, "technician.key")
			chmod(t, techKey, mode)
			wantRefusal(t, "meshctl machines", admin.run("machines"), techKey)
			// Logging in again must not quietly reuse (or replace) it either.
			wantRefusal(t, "meshctl login", admin.run("login", "--credential", b.credential()), techKey)

			chmod(t, agentKey, 0o600)
			chmod(t, techKey, 0o600)
		})
	}

	// With the modes fixed, both work: the refusals were about the mode.
	admin.ok("machines")
	a.start()
	waitOnline(t, admin, 15*time.Second, a)

	// The broker refuses its own key the same way.
	b.stop()
	brokerKey := filepath.Join(b.dir, "broker.key")
	chmod(t, brokerKey, 0o644)
	r := runCmd(t, exitTimeout, nil, bins.broker, "--data", b.dir, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--stun", "127.0.0.1:0")
	wantRefusal(t, "broker", r, brokerKey)
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// wantRefusal checks that a command refused an insecure key file: non-zero
// exit, and a message naming the file and its permissions.
func wantRefusal(t *testing.T, what string, r result, keyPath string) {
	t.Helper()
	if r.err == nil || r.exitCode() <= 0 {
		t.Errorf("%s with an insecure key: want a non-zero exit, got %v", what, r)
		return
	}
	msg := r.stderr
	if !strings.Contains(msg, "permissions") || !strings.Contains(msg, keyPath) {
		t.Errorf("%s: stderr should name %s and mention its permissions:\n%s", what, keyPath, msg)
	}
}
