// Package binaries builds the project's three binaries (broker, sessiond,
// meshctl) for the tests that run them as a user would: as separate
// processes over real sockets, never in process.
package binaries

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"
)

// Paths are the three binaries in one directory.
type Paths struct {
	Broker, Sessiond, Meshctl string
}

// In names the binaries in dir.
func In(dir string) Paths {
	return Paths{Broker: filepath.Join(dir, "broker"), Sessiond: filepath.Join(dir, "sessiond"),
		Meshctl: filepath.Join(dir, "meshctl")}
}

// Build compiles the binaries into dir with the go command on PATH,
// within 5 minutes. The broker embeds whatever broker/console/dist holds:
// make build bundles the web console there first.
func Build(dir string) (Paths, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return Paths{}, fmt.Errorf("no go command on PATH to build the binaries with")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", dir,
		"github.com/readymesh/readymesh/broker/cmd/broker",
		"github.com/readymesh/readymesh/sessiond/cmd/sessiond",
		"github.com/readymesh/readymesh/peer/cmd/meshctl")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Paths{}, fmt.Errorf("go build: %v\n%s", err, out)
	}
	return In(dir), nil
}
