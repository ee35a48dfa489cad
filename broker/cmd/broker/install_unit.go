package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/readymesh/readymesh/peer/flagfile"
	"github.com/readymesh/readymesh/sessiond/service/systemd"
)

// Names and places of the installed broker.
const (
	serviceUnit    = "readymesh-broker.service"
	serviceUser    = "readymesh"
	serviceExe     = "/opt/readymesh/bin/broker" // only root can write /opt
	serviceDataDir = "/var/lib/readymesh/broker" // the unit's StateDirectory
	serviceHome    = "/var/lib/readymesh"        // the service user's home; nothing is kept in it
)

// Sizing of the open-file limit (see noFile).
const (
	defaultMaxAgents    = 10000
	filesPerAgent       = 3
	fileMargin          = 1024
	defaultHTTPMaxConns = 4096    // broker.Config.HTTPMaxConns when zero
	maxNoFile           = 1 << 20 // the kernel's default fs.nr_open: no process may have more
)

// servicePlan is what broker install does, decided without touching the
// system: --print prints it, and the tests check it on any system.
type servicePlan struct {
	Source    string   // the binary copied to Exe, normally the running one
	Exe       string   // the binary the unit runs
	User      string   // the account the broker runs as, made if missing
	DataDir   string   // the broker's --data
	MaxAgents int      // what NoFile is sized for
	HTTPConns int      // the HTTP connections NoFile makes room for (--http-max-conns)
	NoFile    int      // the unit's LimitNOFILE
	Args      []string // Exe's arguments: run --data DataDir, then the run flags given
	LowPorts  []int    // ports below 1024 the run flags bind, which need CAP_NET_BIND_SERVICE
	Unit      *systemd.Unit
}

// installFlags are install's own flags, not broker run's to pass on.
var installFlags = map[string]bool{"max-agents": true, "print": true}

// servicePathFlags are run flags that name files: passed on absolute (a
// service does not start in the installer's directory), and refused
// where the unit's sandbox hides them from the broker.
var servicePathFlags = map[string]bool{"gossip-key-file": true, flagfile.ConfigFlag: true}

// hiddenDirs are not visible to the service: ProtectHome hides the first
// three, PrivateTmp replaces the others with its own.
var hiddenDirs = []string{"/home", "/root", "/run/user", "/tmp", "/var/tmp"}

// newServicePlan plans the service for the binary source, sized for
// maxAgents, with the run flags given on fs.
func newServicePlan(fs *flag.FlagSet, source string, maxAgents int) (*servicePlan, error) {
	p := &servicePlan{Source: source, Exe: serviceExe, User: serviceUser, DataDir: serviceDataDir, MaxAgents: maxAgents}
	p.HTTPConns = httpMaxConns(fs)
	var err error
	if p.NoFile, err = noFile(maxAgents, p.HTTPConns); err != nil {
		return nil, err
	}
	if p.LowPorts, err = lowPorts(fs); err != nil {
		return nil, err
	}
	extra, err := serviceRunArgs(fs)
	if err != nil {
		return nil, err
	}
	p.Args = append([]string{"run", "--data", p.DataDir}, extra...)
	p.Unit = brokerUnit(p)
	return p, nil
}

// serviceRunArgs returns the run flags given on fs as --name=value.
func serviceRunArgs(fs *flag.FlagSet) ([]string, error) {
	var args []string
	var errs []error
	fs.Visit(func(f *flag.Flag) {
		v := f.Value.String()
		switch {
		case installFlags[f.Name]:
			return
		case f.Name == "data":
			errs = append(errs, fmt.Errorf("--data: the installed broker keeps its data in %s, the unit's StateDirectory; "+
				"to keep an existing data directory, move it there before installing", serviceDataDir))
			return
		case servicePathFlags[f.Name] && v != "":
			abs, err := servicePath(f.Name, v)
			if err != nil {
				errs = append(errs, err)
				return
			}
			v = abs
		}
		args = append(args, "--"+f.Name+"="+v)
	})
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return args, nil
}

// servicePath makes the file of flag name absolute, and refuses it where
// the service cannot see it.
func servicePath(name, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", name, err)
	}
	abs = filepath.ToSlash(abs)
	for _, dir := range hiddenDirs {
		if abs == dir || strings.HasPrefix(abs, dir+"/") {
			return "", fmt.Errorf("--%s %s: the service cannot see %s (its unit has ProtectHome and PrivateTmp); keep the file in /etc/readymesh, readable by %s",
				name, abs, dir, serviceUser)
		}
	}
	return abs, nil
}

// noFile is the open-file limit for maxAgents agents: filesPerAgent each
// (the TCP or WebSocket connection of its bridge, a QUIC bridge sharing
// the UDP socket instead; the UDP socket of a TURN allocation while it
// relays a session; and a second bridge while it reconnects, before the
// old one is closed), plus the HTTP connections the broker admits
// (--http-max-conns), plus fileMargin for the listeners, the store,
// gossip and replication with the other brokers, and logging.
func noFile(maxAgents, httpConns int) (int, error) {
	if maxAgents < 1 {
		return 0, fmt.Errorf("--max-agents %d: want at least 1", maxAgents)
	}
	n := filesPerAgent*maxAgents + httpConns + fileMargin
	if n > maxNoFile {
		return 0, fmt.Errorf("--max-agents %d needs %d open files (%d per agent, %d HTTP connections and %d more), above the kernel's %d: "+
			"spread the agents over more brokers", maxAgents, n, filesPerAgent, httpConns, fileMargin, maxNoFile)
	}
	return n, nil
}

// httpMaxConns is the HTTP connections the broker of the run flags on fs
// admits at once.
func httpMaxConns(fs *flag.FlagSet) int {
	if f := fs.Lookup("http-max-conns"); f != nil {
		if n, err := strconv.Atoi(f.Value.String()); err == nil && n > 0 {
			return n
		}
	}
	return defaultHTTPMaxConns
}

// portFlags are the run flags that bind addresses.
var portFlags = []string{"listen", "http", "stun", "gossip", "wan-gossip"}

// lowPorts returns the ports below 1024 the run flags on fs (given or
// default) make the broker bind. The defaults bind none.
func lowPorts(fs *flag.FlagSet) ([]int, error) {
	var low []int
	for _, name := range portFlags {
		f := fs.Lookup(name)
		if f == nil || f.Value.String() == "" || f.Value.String() == "off" {
			continue
		}
		for _, addr := range strings.Split(f.Value.String(), ",") {
			port, err := portOf(addr)
			if err != nil {
				return nil, fmt.Errorf("--%s: %w", name, err)
			}
			if port > 0 && port < 1024 {
				low = append(low, port)
			}
		}
	}
	return low, nil
}

// portOf is the port of a host:port address or of a multiaddr's tcp or
// udp component.
func portOf(addr string) (int, error) {
	addr = strings.TrimSpace(addr)
	var port string
	if strings.HasPrefix(addr, "/") {
		parts := strings.Split(addr, "/")
		for i := 1; i+1 < len(parts) && port == ""; i++ {
			if parts[i] == "tcp" || parts[i] == "udp" {
				port = parts[i+1]
			}
		}
	} else if _, p, err := net.SplitHostPort(addr); err == nil {
		port = p
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is neither host:port nor a multiaddr with a tcp or udp port", addr)
	}
	return int(n), nil
}

// print writes the plan for a person to read, then the unit.
func (p *servicePlan) print(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%-10s %s  (copied from %s)\n%-10s %s, a system user made if missing\n%-10s %s\n"+
		"%-10s %d (%d agents × %d, %d HTTP connections, %d more)\n%-10s %s\n%-10s %s\n\n%s",
		"binary", p.Exe, p.Source, "user", p.User, "data", p.DataDir,
		"files", p.NoFile, p.MaxAgents, filesPerAgent, p.HTTPConns, fileMargin,
		"unit", p.Unit.Path(),
		"then", "copy the binary, write the unit, systemctl daemon-reload, systemctl enable --now "+p.Unit.Name,
		p.Unit.Bytes())
	return err
}

// brokerUnit is the broker's unit: a network daemon under its own
// account, with every protection that leaves it able to serve. Each
// choice is explained in the unit itself, where an administrator reading
// it finds it.
func brokerUnit(p *servicePlan) *systemd.Unit {
	service := []systemd.Directive{
		{Key: "Type", Value: "simple"},
		{Key: "User", Value: p.User, Why: "Its own system account: the broker needs no other privilege, " +
			"and its key and store belong to no one else."},
		{Key: "Group", Value: p.User},
		{Key: "ExecStart", Value: systemd.Exec(append([]string{p.Exe}, p.Args...))},
		{Key: "Restart", Value: "on-failure", Why: "Restarted after a crash or an error exit; not after a clean " +
			"exit, which only a stop asked for causes."},
		{Key: "RestartSec", Value: "5s"},
		{Key: "RestartPreventExitStatus", Value: "2", Why: "Exit status 2 is a command line or config file the " +
			"broker cannot understand: restarting would not change it."},
		{Key: "StateDirectory", Value: "readymesh/broker", Why: "systemd makes " + p.DataDir + " before each " +
			"start, owned by " + p.User + " (an existing one, a broker's data moved here, is handed over to it), " +
			"and keeps it writable under ProtectSystem=strict."},
		{Key: "StateDirectoryMode", Value: "0700"},
		{Key: "UMask", Value: "0077", Why: "The key, the store and the admin credential are the broker's alone."},
		{Key: "LimitNOFILE", Value: strconv.Itoa(p.NoFile), Why: fmt.Sprintf("Sized for %d agents (broker install "+
			"--max-agents): %d files each (the TCP or WebSocket connection of its bridge; the UDP socket of a "+
			"TURN allocation while it relays a session; a second bridge while it reconnects, before the old one "+
			"is closed), the HTTP connections the broker admits (--http-max-conns), and %d for the listeners, "+
			"the store, the other brokers and logging.", p.MaxAgents, filesPerAgent, fileMargin)},
	}
	service = append(service, capabilities(p.LowPorts)...)
	service = append(service, brokerSandbox...)
	d := &systemd.Daemon{
		Name:        serviceUnit,
		Header:      "Written by `broker install`; `broker uninstall` removes it, and --purge also the broker's data.",
		Description: "readymesh broker: bridges, readiness store and relay for a region's agents and technicians",
		NetworkWhy:  "The broker binds its listen addresses as it starts: an address of its own must be up by then.",
		StartLimits: []systemd.Directive{
			{Key: "StartLimitIntervalSec", Value: "10min", Why: "Each restart makes every agent of the " +
				"broker reconnect. A broker that restarts five times within ten minutes fails in a way " +
				"restarting does not fix (a port taken, a damaged store, a disk full): systemd stops " +
				"trying and shows it failed (systemctl --failed) for monitoring to report, while its " +
				"agents fail over to the other brokers of the cluster."},
			{Key: "StartLimitBurst", Value: "5"},
		},
		Service: systemd.Section{Directives: service},
	}
	return d.Unit()
}

// capabilities grants the one capability the broker may need: to bind
// ports below 1024, when its run flags name such a port.
func capabilities(low []int) []systemd.Directive {
	if len(low) == 0 {
		return []systemd.Directive{{Key: "CapabilityBoundingSet", Value: "", Why: "No capabilities: its ports " +
			"(7400 for QUIC and TCP, 7401 for WebSocket, 7480 for HTTP, 3478 for STUN and TURN by default) " +
			"are above 1024, so binding them needs no privilege."}}
	}
	ports := make([]string, len(low))
	for i, p := range low {
		ports[i] = strconv.Itoa(p)
	}
	return []systemd.Directive{
		{Key: "AmbientCapabilities", Value: "CAP_NET_BIND_SERVICE", Why: "To bind port " + strings.Join(ports, ", ") +
			" (below 1024), and nothing else."},
		{Key: "CapabilityBoundingSet", Value: "CAP_NET_BIND_SERVICE"},
	}
}

// brokerSandbox is the rest of the broker's protections: what a network
// daemon that only reads its binary and configuration, writes its data
// directory and talks IP should be held to.
var brokerSandbox = []systemd.Directive{
	{Key: "NoNewPrivileges", Value: "yes", Why: "Nothing the broker runs can gain privileges (it runs nothing)."},
	{Key: "ProtectSystem", Value: "strict", Why: "The whole file system is read-only to the broker but its " +
		"StateDirectory; /home, /root and /run/user are hidden, and /tmp and /var/tmp are its own. Files the " +
		"run flags name (--gossip-key-file, --config) belong in /etc/readymesh."},
	{Key: "ProtectHome", Value: "yes"},
	{Key: "PrivateTmp", Value: "yes"},
	{Key: "PrivateDevices", Value: "yes", Why: "No devices, kernel tunables, modules, kernel log, cgroups, " +
		"clock or host name to change, no other users' processes to see: a broker serves sockets, and " +
		"nothing of the machine it runs on."},
	{Key: "ProtectKernelTunables", Value: "yes"},
	{Key: "ProtectKernelModules", Value: "yes"},
	{Key: "ProtectKernelLogs", Value: "yes"},
	{Key: "ProtectControlGroups", Value: "yes"},
	{Key: "ProtectClock", Value: "yes"},
	{Key: "ProtectHostname", Value: "yes"},
	{Key: "ProtectProc", Value: "invisible"},
	{Key: "RestrictAddressFamilies", Value: "AF_UNIX AF_INET AF_INET6 AF_NETLINK", Why: "IP for its " +
		"listeners and the other brokers, netlink to list the machine's addresses, Unix sockets for local " +
		"control and the journal."},
	{Key: "RestrictNamespaces", Value: "yes", Why: "No namespaces, real-time scheduling, set-user-ID files, " +
		"personality changes, memory both writable and executable (Go never needs it) or foreign system-call " +
		"architectures."},
	{Key: "RestrictRealtime", Value: "yes"},
	{Key: "RestrictSUIDSGID", Value: "yes"},
	{Key: "LockPersonality", Value: "yes"},
	{Key: "MemoryDenyWriteExecute", Value: "yes"},
	{Key: "SystemCallArchitectures", Value: "native"},
	{Key: "SystemCallFilter", Value: "@system-service", Why: "The system calls of an ordinary service, less the " +
		"privileged ones; a call outside them fails with EPERM instead of killing the broker. It keeps setrlimit, " +
		"which Go calls as it starts to raise its open-file limit."},
	{Key: "SystemCallFilter", Value: "~@privileged"},
	{Key: "SystemCallErrorNumber", Value: "EPERM"},
}
