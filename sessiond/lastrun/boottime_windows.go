package lastrun

import (
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// GetTickCount64 is not wrapped by golang.org/x/sys/windows.
var procGetTickCount64 = windows.NewLazySystemDLL("kernel32.dll").NewProc("GetTickCount64")

// BootTime returns when the machine booted: now less GetTickCount64, the
// milliseconds since boot (time asleep included, so a resume is not a
// boot; nor is Fast Startup's hybrid shutdown, which is a hibernation).
func BootTime() (time.Time, error) {
	if err := procGetTickCount64.Find(); err != nil {
		return time.Time{}, fmt.Errorf("boot time: %w", err)
	}
	lo, hi, _ := procGetTickCount64.Call()
	ms := uint64(lo)
	if unsafe.Sizeof(lo) == 4 { // a 64-bit result comes back in two registers
		ms |= uint64(hi) << 32
	}
	return time.Now().Add(-time.Duration(ms) * time.Millisecond).UTC(), nil
}
