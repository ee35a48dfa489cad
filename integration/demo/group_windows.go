package main

import "syscall"

// ownGroup starts a process in a console process group of its own, so
// Ctrl-C at the demo's console is not delivered to it.
func ownGroup() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}
