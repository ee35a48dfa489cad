//go:build !windows && !darwin && !linux

package service

import (
	"fmt"
	"runtime"
)

func newSystem() (system, error) {
	return nil, fmt.Errorf("sessiond install: no service manager support for %s", runtime.GOOS)
}
