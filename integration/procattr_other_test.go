//go:build !linux

package integration

import "os/exec"

// dieWithParent does nothing here: only Linux has a parent-death signal.
// t.Cleanup still kills every process on a normal exit.
func dieWithParent(*exec.Cmd) {}
