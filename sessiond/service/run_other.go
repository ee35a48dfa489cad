//go:build !windows

package service

import "context"

// Managed reports whether a service manager that needs to be answered
// started this process: never here. launchd (and systemd) stop a daemon
// with SIGTERM, which the binary turns into the end of run's context.
func Managed() (bool, error) { return false, nil }

// Run runs run until ctx ends; only Windows has more to do (see
// run_windows.go).
func Run(ctx context.Context, run func(context.Context) error) error { return run(ctx) }
