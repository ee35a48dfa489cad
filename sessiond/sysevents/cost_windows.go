package sysevents

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// The IP helper's connectivity hint (Windows 10 2004 and later): the
// connection cost Windows computes for the network the default route
// uses, the same one its own metered-connection setting shows.
var (
	iphlpapi                                = windows.NewLazySystemDLL("iphlpapi.dll")
	procGetNetworkConnectivityHint          = iphlpapi.NewProc("GetNetworkConnectivityHint")
	procNotifyNetworkConnectivityHintChange = iphlpapi.NewProc("NotifyNetworkConnectivityHintChange")
)

// connectivityHint is NL_NETWORK_CONNECTIVITY_HINT: two enums and three
// BOOLEANs, 12 bytes with its padding.
type connectivityHint struct {
	Level                uint32 // NL_NETWORK_CONNECTIVITY_LEVEL_HINT
	Cost                 uint32 // NL_NETWORK_CONNECTIVITY_COST_HINT
	ApproachingDataLimit byte
	OverDataLimit        byte
	Roaming              byte
	_                    byte
}

// NL_NETWORK_CONNECTIVITY_COST_HINT values.
const (
	costUnknown      = 0
	costUnrestricted = 1
	costFixed        = 2 // a data plan with a limit
	costVariable     = 3 // charged by use
)

// hintMetered turns a hint into the watcher's reading: fixed and variable
// cost are metered; unrestricted and unknown are not.
func hintMetered(h connectivityHint) (metered bool, detail string) {
	switch h.Cost {
	case costVariable:
		return true, "metered connection (charged by use)"
	case costFixed:
		if h.OverDataLimit != 0 {
			return true, "metered connection (over its data limit)"
		}
		return true, "metered connection (data limit)"
	case costUnrestricted:
		return false, "unmetered"
	}
	return false, "unknown (taken as unmetered)"
}

// readHint calls GetNetworkConnectivityHint.
func readHint() (connectivityHint, error) {
	var h connectivityHint
	if err := procGetNetworkConnectivityHint.Find(); err != nil {
		return h, fmt.Errorf("iphlpapi.dll has no GetNetworkConnectivityHint: %w", errors.ErrUnsupported)
	}
	if st, _, _ := procGetNetworkConnectivityHint.Call(uintptr(unsafe.Pointer(&h))); st != 0 {
		return h, fmt.Errorf("GetNetworkConnectivityHint: %w", windows.NTStatus(st))
	}
	return h, nil
}

// costWatch is one registration for connectivity hint changes.
type costWatch struct {
	handle  windows.Handle
	key     uintptr
	changed chan struct{} // a token when the hint changed
}

// costWatches maps a registration's key, the callback's context, to its
// changed channel. The system holds only the key, which the callback
// looks up, so a late callback finds nothing and returns.
var (
	costWatches sync.Map // uintptr → chan struct{}
	costKeys    struct {
		sync.Mutex
		next uintptr
	}
)

// hintCallback is made once per process: syscall.NewCallback never frees
// one.
var hintCallback = sync.OnceValue(func() uintptr { return syscall.NewCallback(onHintChange) })

// onHintChange is the NETWORK_CONNECTIVITY_HINT_CHANGE_CALLBACK. Its
// second argument is the hint by value, which each architecture passes
// differently (by reference on amd64, in two registers on arm64, as 12
// bytes of stack on 386); declaring three words for it keeps 386's
// stdcall stack balanced and is harmless elsewhere. The hint itself is
// not used: the watcher reads it again with GetNetworkConnectivityHint.
// It runs on a system thread and must not block.
func onHintChange(callerContext, _, _, _ uintptr) uintptr {
	if v, ok := costWatches.Load(callerContext); ok {
		select {
		case v.(chan struct{}) <- struct{}{}:
		default:
		}
	}
	return 0
}

// watchCost registers for hint changes. It fails where the functions are
// missing (before Windows 10 2004, and under Wine) or where the
// registration returns no handle, a stub that would never call back.
func watchCost() (*costWatch, error) {
	for _, p := range []*windows.LazyProc{procGetNetworkConnectivityHint, procNotifyNetworkConnectivityHintChange} {
		if err := p.Find(); err != nil {
			return nil, fmt.Errorf("iphlpapi.dll has no %s: %w", p.Name, errors.ErrUnsupported)
		}
	}
	costKeys.Lock()
	costKeys.next++
	c := &costWatch{key: costKeys.next, changed: make(chan struct{}, 1)}
	costKeys.Unlock()
	costWatches.Store(c.key, c.changed)
	st, _, _ := procNotifyNetworkConnectivityHintChange.Call(hintCallback(), c.key, 0, uintptr(unsafe.Pointer(&c.handle)))
	if st != 0 {
		costWatches.Delete(c.key)
		return nil, fmt.Errorf("NotifyNetworkConnectivityHintChange: %w", windows.NTStatus(st))
	}
	if c.handle == 0 {
		costWatches.Delete(c.key)
		return nil, fmt.Errorf("NotifyNetworkConnectivityHintChange returned no handle: %w", errors.ErrUnsupported)
	}
	return c, nil
}

// close cancels the registration; CancelMibChangeNotify2 waits for a
// callback under way.
func (c *costWatch) close() {
	windows.CancelMibChangeNotify2(c.handle)
	costWatches.Delete(c.key)
}
