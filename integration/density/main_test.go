package density

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// roleEnv selects what this test binary does when it is re-executed as a
// child process. Unset means the normal test run.
const roleEnv = "READYMESH_DENSITY_ROLE"

// roleTLSServer runs the baseline TLS server (tlsserver_test.go).
const roleTLSServer = "tls-server"

// brokerEnv, if set, names a broker binary to measure instead of building
// this tree's: a release, or a build with a change under test.
const brokerEnv = "READYMESH_DENSITY_BROKER"

// brokerVarsEnv, if set, holds space-separated NAME=VALUE pairs added to
// the broker's environment only, e.g. "GOGC=50" to measure how the Go
// runtime's settings change the figures without rebuilding the broker.
const brokerVarsEnv = "READYMESH_DENSITY_BROKER_ENV"

// brokerFlagsEnv, if set, holds space-separated flags added to the
// broker's command line, e.g. "--max-handshakes 512 --accept-rate 1000"
// to measure the admission settings in a reconnect storm.
const brokerFlagsEnv = "READYMESH_DENSITY_BROKER_FLAGS"

// workDir is the temporary directory of this test process: the broker
// binary and the enrolled broker templates live there. TestMain removes it.
var workDir string

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == roleTLSServer {
		os.Exit(runTLSServer())
	}
	dir, err := os.MkdirTemp("", "readymesh-density-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "density:", err)
		os.Exit(1)
	}
	workDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// brokerBin builds the real broker binary once per test process, on first
// use, so `go test -list` and runs that filter everything out stay fast.
var brokerBin = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv(brokerEnv); bin != "" {
		return bin, nil
	}
	return build("broker", "github.com/readymesh/readymesh/broker/cmd/broker")
})

// meshctlBin builds this tree's meshctl once per test process, on first
// use: the reconnect storm's technician runs it as its own process.
var meshctlBin = sync.OnceValues(func() (string, error) {
	return build("meshctl", "github.com/readymesh/readymesh/peer/cmd/meshctl")
})

// build builds the command pkg into workDir/name.
func build(name, pkg string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no go command to build %s with: %w", name, err)
	}
	out := filepath.Join(workDir, name)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, pkg)
	// Build inside the module even when the test binary runs elsewhere.
	if _, file, _, ok := runtime.Caller(0); ok {
		cmd.Dir = filepath.Dir(file)
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", name, err, msg)
	}
	return out, nil
}

// needBroker returns the broker binary's path or fails tb.
func needBroker(tb testing.TB) string {
	tb.Helper()
	bin, err := brokerBin()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}
