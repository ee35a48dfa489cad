//go:build !windows && !darwin

package service

import (
	"fmt"
	"runtime"
)

func newSystem() (system, error) {
	if runtime.GOOS == "linux" {
		return nil, ErrSystemdNotBuilt
	}
	return nil, fmt.Errorf("sessiond install: no service manager support for %s", runtime.GOOS)
}
