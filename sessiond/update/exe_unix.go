//go:build !windows

package update

import (
	"os"
	"os/exec"
)

// exeSuffix is the executable's file name suffix: none here.
const exeSuffix = ""

// detach starts the child in the parent's process group: a terminal's
// Ctrl-C and systemd's SIGTERM to the unit reach both, and the child stops
// on either, as it does when its stdin closes.
func detach(*exec.Cmd) {}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
