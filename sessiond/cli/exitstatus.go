package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/readymesh/readymesh/sessiond/lastrun"
)

// exitStatus runs `sessiond exit-status`, which the agent's systemd unit
// runs after every stop (ExecStopPost): systemd tells it how the agent's
// process ended ($SERVICE_RESULT, $EXIT_CODE, $EXIT_STATUS; see
// systemd.exec(5)), and it leaves that in the state directory for the
// next run to report (package lastrun): "killed by signal KILL" says
// more than "no exit recorded" on the card of a machine whose agent was
// killed. A clean stop writes nothing.
func (e *env) exitStatus(name string, args []string) error {
	fs := e.flags(name)
	dir := fs.String("state", "", "state `dir`ectory")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		return &usageError{msg: "exit-status takes --state DIR and no arguments"}
	}
	line := describeExit(os.Getenv("SERVICE_RESULT"), os.Getenv("EXIT_CODE"), os.Getenv("EXIT_STATUS"))
	if line == "" {
		return nil
	}
	path := filepath.Join(*dir, lastrun.ExitStatusFile)
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		return fmt.Errorf("exit-status: %w", err)
	}
	return nil
}

// describeExit says in words how a service's main process ended, from
// systemd's variables, or "" when it stopped cleanly (or systemd said
// nothing).
func describeExit(result, code, status string) string {
	if result == "" || result == "success" || code == "" {
		return ""
	}
	var s string
	switch code {
	case "exited":
		s = "exited with status " + status
	case "killed":
		s = "killed by signal " + status
	case "dumped":
		s = "crashed and dumped core on signal " + status
	default:
		s = code + " " + status
	}
	switch result {
	case "oom-kill":
		s += " (the kernel's out-of-memory killer)"
	case "watchdog":
		s += " (systemd's watchdog)"
	case "timeout":
		s += " (a systemd timeout)"
	}
	return strings.TrimSpace(s)
}
