// Package integration holds readymesh's end-to-end tests. They build the
// real broker, sessiond and meshctl binaries once (in TestMain) and run them
// as separate processes on loopback, each with its own data directory, so
// what they check is what an operator would see: exit codes, messages on
// stderr, `meshctl --json` output, and behaviour across crashes, signals and
// restarts.
//
// The harness (harness_test.go, cluster_test.go) starts processes with
// kernel-chosen ports read back from the ready line and broker.json, polls
// with bounded deadlines instead of sleeping, and kills everything it
// started in t.Cleanup, printing the tail of each process's log when a test
// fails. Agents play fixture machines from testdata/, so no test waits for a
// real package-manager simulation.
package integration
