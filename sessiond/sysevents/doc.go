// Package sysevents tells the agent what the operating system is about to
// do to it: the machine is going to sleep, it resumed, it is shutting
// down or rebooting, and whether the network it is on is metered.
//
// The broker can only guess why an agent went silent. A laptop whose lid
// closed, a server rebooting for updates and a machine that lost its
// network all look the same from there: a presence stream that stopped.
// The agent knows the difference a moment before it happens, and this
// package is how it learns it in time to say so ("leaving: asleep, lid
// closed") and, on a metered connection, to keep quiet as the fleet's
// policy asks. Sleep and Shutdown events come with a short delay the
// system grants (Config.MaxDelay, 3 s by default), so the agent's
// leaving notice gets out before the network goes; the agent calls
// Event.Release once it has, and the watcher lets go by itself when the
// time is up, so a stuck agent never keeps a lid-closed laptop awake.
//
// Each system announces these things its own way:
//
//   - Linux (watch through the system D-Bus, bus_linux.go): logind's
//     PrepareForSleep and PrepareForShutdown signals, with a "delay"
//     inhibitor taken through its Inhibit method. The watcher holds one
//     inhibitor while nothing is under way, hands it to the Sleep or
//     Shutdown event it delivers, and takes a new one after a resume or
//     a cancelled shutdown. The kind of shutdown comes from
//     PrepareForShutdownWithMetadata (systemd 255 and later) or else
//     logind's ScheduledShutdown property; "lid closed" from its
//     LidClosed property. NetworkManager's Metered property (and its
//     PropertiesChanged signal) says whether the connection is metered.
//     The bus, logind and NetworkManager may each be missing or restart:
//     the watcher says so once, follows NameOwnerChanged, and dials the
//     bus again when it goes away. A machine without NetworkManager
//     (systemd-networkd, a server's static address) is never metered.
//   - Windows: sleep and resume reach a service only through its control
//     handler, which package service owns, so service forwards the
//     SCM's power events to PowerEvent. Windows offers no way to delay a
//     suspend, so a Windows Sleep holds nothing and the agent's notice
//     races the suspend (see PowerEvent). Shutdown is no event there:
//     the SCM stops the service, and the agent's context ends with
//     service.ErrShutdown as its cause. The connection's cost comes from
//     the IP helper's connectivity hint (GetNetworkConnectivityHint and
//     its change notification, Windows 10 2004 and later): a fixed or
//     variable cost is metered. Wine lacks both functions: the watcher
//     says so and reports nothing metered.
//   - macOS and the rest: nothing is delivered. macOS announces sleep
//     through IOKit's IORegisterForSystemPower on a CFRunLoop and the
//     cost of a path through Network.framework's NWPathMonitor
//     (isExpensive, isConstrained); both need cgo, which the agent's
//     builds do not use. A launchd daemon is stopped with SIGTERM at
//     shutdown, so the agent there leaves as "stopped". This is a known
//     gap.
//
// The D-Bus side is tested against a real dbus-daemon with stand-ins for
// logind and NetworkManager (package fakesys, also used by the agent's
// integration tests); the Windows side's power events under Wine, where
// the connectivity hint is missing.
package sysevents
