package service

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

func newSystem() (system, error) {
	return &launchdSystem{launchctl: runLaunchctl, euid: os.Geteuid}, nil
}

// launchctlWait bounds one launchctl call; bootout waits for the agent to
// exit, which launchd itself bounds at 20 s.
const launchctlWait = 60 * time.Second

// runLaunchctl runs /bin/launchctl, with its output in the error.
func runLaunchctl(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), launchctlWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/bin/launchctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("launchctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
