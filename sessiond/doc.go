// Package sessiond is the agent daemon that runs on every managed endpoint.
//
// The agent keeps one bridge to its broker and does two things over it. It
// checks in: at start (reason reboot when the boot ID changed since the last
// acknowledged check-in, else restart), every CheckInInterval, when an
// address or the default route changes, and on demand. Each check-in is a
// readiness snapshot from the collectors (package collect) with a sequence
// number that is committed to the local database (package localdb) before
// it is sent, so it survives restarts. And it keeps a presence stream open
// with heartbeats carrying heartbeat signals (load, whether a person is
// logged in), which is how the broker knows the machine is reachable right
// now.
//
// Over the same bridge, brokers carry technicians' session offers: the
// agent asks the person at the machine for consent when its policy says
// so, answers on its session socket (package mesh), and serves the session
// channels inside each live session (package channel: terminal, exec,
// files). Brokers also send queued jobs, which the agent runs at most once
// each. An update job installs a release signed with the release key the
// agent pinned at enrolment: the agent downloads and stages the binary,
// then stops and, in the same process, watches the new binary on trial
// (package update), committing it once it has checked in or putting the
// previous one back.
//
// When the bridge drops, the agent waits a random draw from the reconnect
// window its broker gave in the presence hello, then dials, backing off
// with full jitter while no broker answers, so a broker restart does not
// bring every agent back in the same second.
//
// A local control channel lets the person at the machine (or a script) ask
// for a check-in, read the agent's status and answer consent requests: a
// Unix socket in the state directory, a named pipe on Windows (package
// ipc). The agent runs the same on Linux, Windows and macOS; what differs
// lives in the packages below it (how accounts and terminals work in
// channel, what the collectors read, how network changes arrive, how the
// service manager starts it in package service).
package sessiond
