package collect

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Calls golang.org/x/sys/windows does not wrap.
var (
	modkernel32                     = windows.NewLazySystemDLL("kernel32.dll")
	modwtsapi32                     = windows.NewLazySystemDLL("wtsapi32.dll")
	procGetSystemTimes              = modkernel32.NewProc("GetSystemTimes")
	procWTSQuerySessionInformationW = modwtsapi32.NewProc("WTSQuerySessionInformationW")
)

// systemTimes calls GetSystemTimes.
func systemTimes() (cpuTimes, error) {
	if err := procGetSystemTimes.Find(); err != nil {
		return cpuTimes{}, err
	}
	var idle, kernel, user windows.Filetime
	r, _, err := procGetSystemTimes.Call(
		uintptr(unsafe.Pointer(&idle)), uintptr(unsafe.Pointer(&kernel)), uintptr(unsafe.Pointer(&user)))
	if r == 0 {
		return cpuTimes{}, fmt.Errorf("GetSystemTimes: %w", err)
	}
	return cpuTimes{idle: filetime64(idle), kernel: filetime64(kernel), user: filetime64(user)}, nil
}

func filetime64(f windows.Filetime) uint64 {
	return uint64(f.HighDateTime)<<32 | uint64(f.LowDateTime)
}

// systemTimeOfDay is SYSTEM_TIMEOFDAY_INFORMATION, what
// NtQuerySystemInformation(SystemTimeOfDayInformation) fills: 48 bytes.
type systemTimeOfDay struct {
	BootTime      int64
	CurrentTime   int64
	TimeZoneBias  int64
	TimeZoneID    uint32
	_             uint32
	BootTimeBias  uint64
	SleepTimeBias uint64
}

// bootTime returns the kernel's boot time and boot time bias.
func bootTime() (t int64, bias uint64, err error) {
	var info systemTimeOfDay
	var n uint32
	err = windows.NtQuerySystemInformation(windows.SystemTimeOfDayInformation,
		unsafe.Pointer(&info), uint32(unsafe.Sizeof(info)), &n)
	if err != nil {
		return 0, 0, fmt.Errorf("NtQuerySystemInformation(SystemTimeOfDayInformation): %w", err)
	}
	if info.BootTime <= 0 {
		return 0, 0, errors.New("the kernel reports no boot time")
	}
	return info.BootTime, info.BootTimeBias, nil
}

// WTS_INFO_CLASS values for WTSQuerySessionInformationW.
const (
	wtsUserName   = 5
	wtsDomainName = 7
)

// wtsSessions lists the machine's sessions with their user and domain.
func wtsSessions() ([]wtsSession, error) {
	var infos *windows.WTS_SESSION_INFO
	var n uint32
	if err := windows.WTSEnumerateSessions(0, 0, 1, &infos, &n); err != nil {
		return nil, fmt.Errorf("WTSEnumerateSessions: %w", err)
	}
	defer windows.WTSFreeMemory(uintptr(unsafe.Pointer(infos)))
	if infos == nil {
		return nil, nil
	}
	list := unsafe.Slice(infos, min(n, maxWTSSessions))
	out := make([]wtsSession, 0, len(list))
	var errs []error
	for _, si := range list {
		if si.State != wtsActive && si.State != wtsDisconnected {
			continue
		}
		s := wtsSession{ID: si.SessionID, State: si.State}
		var err1, err2 error
		s.User, err1 = wtsString(si.SessionID, wtsUserName)
		s.Domain, err2 = wtsString(si.SessionID, wtsDomainName)
		if err := errors.Join(err1, err2); err != nil {
			errs = append(errs, fmt.Errorf("session %d: %w", si.SessionID, err))
			continue
		}
		out = append(out, s)
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// wtsString reads one string of a session with WTSQuerySessionInformationW.
func wtsString(session uint32, class uint32) (string, error) {
	if err := procWTSQuerySessionInformationW.Find(); err != nil {
		return "", err
	}
	var buf *uint16
	var size uint32
	r, _, err := procWTSQuerySessionInformationW.Call(0, uintptr(session), uintptr(class),
		uintptr(unsafe.Pointer(&buf)), uintptr(unsafe.Pointer(&size)))
	if r == 0 {
		return "", fmt.Errorf("WTSQuerySessionInformation(%d): %w", class, err)
	}
	defer windows.WTSFreeMemory(uintptr(unsafe.Pointer(buf)))
	if buf == nil || size < 2 {
		return "", nil
	}
	return windows.UTF16ToString(unsafe.Slice(buf, size/2)), nil
}

// nativeArch names the machine's processor architecture as GOARCH does,
// which may differ from the agent's own (an amd64 agent emulated on
// arm64). It falls back to the agent's when Windows cannot say
// (IsWow64Process2 is Windows 10 1511 and later).
func nativeArch() string {
	var process, native uint16
	if err := windows.IsWow64Process2(windows.CurrentProcess(), &process, &native); err == nil {
		if a := machineArch(native); a != "" {
			return a
		}
	}
	return runtime.GOARCH
}
