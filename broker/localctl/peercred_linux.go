package localctl

import (
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// peerAllowed reports whether the process at the other end of c runs as
// this process's user or as root, from the kernel's record of who
// connected (SO_PEERCRED). The socket's mode already keeps others out;
// this holds even if the mode is changed or the directory opened up.
func peerAllowed(c *net.UnixConn) (uid int, ok bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, false
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return -1, false
	}
	uid = int(cred.Uid)
	return uid, uid == 0 || uid == os.Geteuid()
}
