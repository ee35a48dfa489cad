package sessiond

import (
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/pion/transport/v5"

	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/ipc"
)

// File names inside the state directory.
const (
	KeyFile    = "agent.key"
	DBFile     = "agent.db"
	InfoFile   = "agent.json"
	SocketFile = ipc.SocketFile // Linux and macOS; Windows has a named pipe instead
)

// DefaultStateDir is the state directory on goos (a GOOS value) of the
// agent `sessiond install` sets up, and the one the commands at the
// machine talk to when --state is not given: %ProgramData%\readymesh\sessiond
// on Windows (C:\ProgramData when the variable is unset or goos is not this
// system), /Library/Application Support/readymesh/sessiond on macOS and
// /var/lib/readymesh/sessiond elsewhere. Install makes it readable by
// administrators only.
func DefaultStateDir(goos string) string {
	switch goos {
	case "windows":
		base := `C:\ProgramData`
		if pd := os.Getenv("ProgramData"); pd != "" && goos == runtime.GOOS {
			base = strings.TrimRight(pd, `\`)
		}
		return base + `\readymesh\sessiond`
	case "darwin":
		return "/Library/Application Support/readymesh/sessiond"
	}
	return "/var/lib/readymesh/sessiond"
}

// NoSystemBus, as Config.SystemBus (sessiond run --system-bus none),
// watches no system events.
const NoSystemBus = "none"

// Config configures an agent.
type Config struct {
	// StateDir holds the key, the local database (DBFile), agent.json and
	// the control socket. It must not be empty; it is created with mode
	// 0700.
	StateDir string
	// Inventory, if set, is a JSON fixture (wire.Snapshot shape) that
	// replaces the machine collectors, so a demo or test can play a Windows
	// or macOS machine. Empty means collect from this machine.
	Inventory string
	// CheckInInterval is the time between periodic check-ins. Shorter keeps
	// readiness fresher at the cost of a snapshot upload each time. Zero
	// means 1 hour.
	CheckInInterval time.Duration
	// ConsentPolicy is the consent policy until a technician with admin
	// rights sets one (meshctl consent): never, window or session. Empty
	// means never.
	ConsentPolicy string
	// ReconnectMin and ReconnectMax bound the reconnect backoff. Zero means
	// 500 ms and 30 s.
	ReconnectMin, ReconnectMax time.Duration
	// SessionAddr is the UDP address of the session socket that live
	// sessions use (direct QUIC and hole punching). Empty means ":0", a
	// port the kernel picks; a fixed port lets a firewall admit it.
	SessionAddr string
	// ConsentWindow is how long one approval lasts under the window
	// policy. Zero means 8 hours.
	ConsentWindow time.Duration
	// ConsentTimeout is how long a session request waits for the person
	// at the machine. Zero means 2 minutes.
	ConsentTimeout time.Duration
	// RecordInput keeps technicians' keystrokes in terminal transcripts.
	// Off by default: input may hold passwords.
	RecordInput bool
	// SessionUser is the account interactive sessions run as (terminal and
	// exec); elevated sessions run as the agent's own user. Empty means
	// "nobody" when the agent runs as root, else the agent's user.
	SessionUser string
	// AptTimeout bounds the pending-updates collector. Zero means 60 s.
	AptTimeout time.Duration
	// Net is the network the agent takes every UDP socket from: the
	// session socket (direct QUIC, hole punching and WebRTC) and the
	// bridge host's. Nil means the host's network; tests pass a pion vnet,
	// and the bridge then runs QUIC alone (see bridge.HostConfig.Net). The
	// control channel (package ipc) is local either way.
	Net transport.Net
	// Executable is the agent's executable, the file an update replaces
	// (EXE.new and EXE.previous go next to it). Empty means this
	// program's, symlinks resolved.
	Executable string
	// Trial says this agent is a new binary on trial, started by the
	// previous one as its watchdog (package update): its first check-in
	// reports the update, and once that is acknowledged it writes the
	// healthy marker. sessiond run sets it from update.FromWatchdog.
	Trial bool
	// DownloadChunkTimeout bounds the wait for the next bytes of a
	// release download before the stream is dropped and the download
	// resumed. Zero means 60 s.
	DownloadChunkTimeout time.Duration
	// OnMetered is what the agent does on a metered connection until the
	// fleet sets a policy for it (meshctl policy set --on-metered):
	// wire.MeteredNormal (nothing changes) or wire.MeteredQuiet (close
	// the bridge and check in every QuietInterval). Empty means normal.
	OnMetered string
	// QuietInterval is the check-in cadence in quiet mode, unless the
	// fleet's policy sets one. Zero means 6 hours.
	QuietInterval time.Duration
	// SystemBus is the D-Bus system bus address the agent watches for
	// sleep, shutdown and metered connections on Linux (logind and
	// NetworkManager). Empty means $DBUS_SYSTEM_BUS_ADDRESS, else the
	// default system bus. NoSystemBus watches nothing on any system: for
	// agents that play another machine (tests, the demo), whose host's
	// sleep and network are not theirs.
	SystemBus string
	// RecordRun records this run in the state directory (package
	// lastrun), so the next run can tell how it ended: cleanly, or not
	// (killed, crashed, the power went), with a panic's first line. Only
	// one agent in a process may: the runtime has one crash output.
	// sessiond run sets it.
	RecordRun bool
	// Logger receives the agent's logs. Nil means discard.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.CheckInInterval <= 0 {
		c.CheckInInterval = time.Hour
	}
	if c.ConsentPolicy == "" {
		c.ConsentPolicy = wire.ConsentNever
	}
	if c.ConsentWindow <= 0 {
		c.ConsentWindow = 8 * time.Hour
	}
	if c.ConsentTimeout <= 0 {
		c.ConsentTimeout = 2 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.OnMetered == "" {
		c.OnMetered = wire.MeteredNormal
	}
	if c.QuietInterval <= 0 {
		c.QuietInterval = 6 * time.Hour
	}
}
