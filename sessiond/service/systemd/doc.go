// Package systemd writes the systemd units readymesh installs on Linux and
// drives systemctl to enable, start and remove them. Two daemons use it:
// the agent (package sessiond/service, behind `sessiond install`) and the
// broker (`broker install`), so both quote their command lines, comment
// their choices and undo a failed start the same way.
//
// A Unit is plain data: it is built, printed (`install --print`) and
// checked (`systemd-analyze verify` in the tests) on any system. The only
// calls into the system go through a Systemctl function, so the order in
// which a Manager writes, reloads, enables, starts and removes a unit is
// unit-tested against a fake without systemd running.
//
// Each directive carries the reason it is there, written above it in the
// unit file: whoever reads /etc/systemd/system/readymesh-*.service on a
// machine learns why the agent has no sandbox and the broker a tight one
// without finding this source. That is why units are not built with
// github.com/coreos/go-systemd's unit package, which serialises options
// without comments and leaves the quoting of command lines to its caller;
// Exec and SplitExec here implement the quoting of systemd.syntax(7), and a
// fuzz test checks that one reads back what the other wrote.
package systemd
