package main

import (
	"fmt"
	"runtime/debug"
)

// defaultGCPercent is the broker's garbage-collection target, the Go
// runtime's GOGC, unless the flag or the environment set another.
//
// A broker's heap is mostly long-lived per-bridge state (QUIC and TLS
// connection state, 47 KB per idle agent), and each connection's handshake
// allocates about five times that in garbage. At Go's default of 100 the
// heap doubles between collections, so after a reconnect storm the
// survivors sit sparsely in spans the runtime cannot give back: measured
// at 5,000 idle agents (integration/density BenchmarkBridgeDensity), that
// fragmentation was 23.6 KB per agent at 100 and 11.0 KB at 50, for 73.1
// and 60.3 KB of heap per agent, and 135 and 102 KB of RSS. The price is
// more frequent marking when the broker allocates, which is during
// storms (BenchmarkReconnectStorm reports the broker's CPU seconds); an
// idle broker allocates little and collects rarely either way.
const defaultGCPercent = 50

// gcPercent decides the collector's target: the --gc-percent flag when it
// was given; otherwise the GOGC environment variable when it is set (the
// runtime has applied it already, so nothing is to be done); otherwise
// defaultGCPercent. It returns the value to apply, and false when there is
// nothing to apply.
func gcPercent(flagGiven bool, flagValue int, env string) (int, bool, error) {
	if flagGiven {
		if flagValue < -1 || flagValue == 0 {
			return 0, false, fmt.Errorf("--gc-percent %d: want a percentage above 0, or -1 to turn the collector off", flagValue)
		}
		return flagValue, true, nil
	}
	if env != "" {
		return 0, false, nil
	}
	return defaultGCPercent, true, nil
}

// applyGCPercent sets the collector's target as gcPercent decides.
func applyGCPercent(flagGiven bool, flagValue int, env string) error {
	p, apply, err := gcPercent(flagGiven, flagValue, env)
	if err != nil {
		return err
	}
	if apply {
		debug.SetGCPercent(p)
	}
	return nil
}
