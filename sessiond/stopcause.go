package sessiond

// isShutdown reports whether cause, the cause of Run's context, says the
// system is shutting down.
func isShutdown(cause error) bool { return false }
