package sessiond

import (
	"errors"

	"github.com/readymesh/readymesh/sessiond/service"
)

// isShutdown reports whether cause, the cause of Run's context, says the
// system is shutting down: the Windows SCM's Shutdown or PreShutdown.
// (systemd and launchd stop services with SIGTERM at shutdown too; there
// the agent knows from logind's announcement, which holds the bridge.)
func isShutdown(cause error) bool { return errors.Is(cause, service.ErrShutdown) }
