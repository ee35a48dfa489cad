//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// sameOwner gives path the owner and group of like, so that a file root
// writes into the broker's data directory stays readable by the broker's
// own account.
func sameOwner(path, like string) error {
	fi, err := os.Stat(like)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner to copy", like)
	}
	if int(st.Uid) == os.Getuid() && int(st.Gid) == os.Getgid() {
		return nil
	}
	return os.Chown(path, int(st.Uid), int(st.Gid))
}
