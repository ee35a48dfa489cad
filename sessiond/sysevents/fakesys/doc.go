// Package fakesys runs a private D-Bus system bus for tests, with
// stand-ins for the two system services the agent listens to on Linux:
// logind (org.freedesktop.login1), which announces sleep and shutdown and
// hands out delay inhibitors, and NetworkManager
// (org.freedesktop.NetworkManager), whose Metered property says whether
// the connection costs by the byte.
//
// The bus is a real dbus-daemon (Debian's /usr/bin/dbus-daemon) on a
// socket in a temporary directory, so the code under test speaks the real
// wire protocol: it authenticates, adds match rules, passes the
// inhibitor's file descriptor, and sees NameOwnerChanged when a service
// leaves or comes back. Only the two services are stand-ins, and they
// keep to what their real counterparts publish: logind's Inhibit returns
// the write end of a pipe and watches the read end, exactly as logind
// watches its FIFO, so a test sees when the code under test lets the
// system go on.
//
// Point the code under test at Bus.Address (sysevents.Config.Bus, or
// DBUS_SYSTEM_BUS_ADDRESS for a child process). Start needs dbus-daemon:
// without it the test fails, or is skipped with the reason printed when
// READYMESH_REQUIRE_NETNS is unset, as the project's other tests that need
// a system tool are.
//
// It works on Linux only; elsewhere the package is empty.
package fakesys
