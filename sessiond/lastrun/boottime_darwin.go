package lastrun

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// BootTime returns when the machine booted: sysctl kern.boottime.
func BootTime() (time.Time, error) {
	tv, err := unix.SysctlTimeval("kern.boottime")
	if err != nil {
		return time.Time{}, fmt.Errorf("boot time: kern.boottime: %w", err)
	}
	return time.Unix(int64(tv.Sec), int64(tv.Usec)*1000).UTC(), nil
}
