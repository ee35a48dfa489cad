package netwatch

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/readymesh/readymesh/sessiond/internal/wintest"
)

// TestWatchSystem runs Watch against the system's IP helper. Wine 8
// implements NotifyIpInterfaceChange, NotifyUnicastIpAddressChange and
// NotifyRouteChange2 as stubs that succeed, return a null handle and never
// call back (the second calls back once, with the initial notification,
// when asked to), so there Watch must fail with ErrUnsupported and the
// agent falls back to its check-in interval. On Windows it must watch and
// stop cleanly.
func TestWatchSystem(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := Watch(ctx, Config{Logger: testLogger(t, "watch")})
	if wintest.UnderWine() {
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "NotifyIpInterfaceChange") {
			t.Fatalf("under Wine: Watch error = %v, want ErrUnsupported naming NotifyIpInterfaceChange", err)
		}
		t.Logf("under Wine, as expected: %v", err)
		if n := registeredCount(); n != 0 {
			t.Errorf("%d notifiers still registered after a failed Watch", n)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	drainClosed(t, ch)
	waitGoroutines(t, before)
}

// registered reports whether the notifier Watch registered for f is still
// reachable by callbacks.
func (f *fakeIPHelper) registered() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := registered.Load(f.context)
	return ok
}

func registeredCount() int {
	n := 0
	registered.Range(func(any, any) bool { n++; return true })
	return n
}

// fakeIPHelper registers callbacks the way the system does and lets the
// test call them through the same C calling convention, with rows it
// builds. Handles are 1, 2 and 3 in registration order.
type fakeIPHelper struct {
	t *testing.T
	// failing names a registration that fails with err, or with a null
	// handle when err is nil.
	failing string
	err     error
	// connected is what interface look-ups answer, by LUID; absent means
	// the interface is gone. interfaces is the initial list.
	connected  map[uint64]bool
	interfaces map[mibLink]bool
	// lookup, when set, is called on each connected look-up first.
	lookup func()

	mu        sync.Mutex
	callbacks map[string]uintptr
	context   uintptr
	cancelled []windows.Handle
}

func (f *fakeIPHelper) api() ipHelper {
	return ipHelper{
		notifyInterface: f.notify("interface"),
		notifyAddress:   f.notify("address"),
		notifyRoute:     f.notify("route"),
		cancel: func(h windows.Handle) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.cancelled = append(f.cancelled, h)
			return nil
		},
		connected: func(_ uint16, luid uint64) (bool, error) {
			if f.lookup != nil {
				f.lookup()
			}
			up, ok := f.connected[luid]
			if !ok {
				return false, windows.ERROR_NOT_FOUND
			}
			return up, nil
		},
		interfaces: func() (map[mibLink]bool, error) { return f.interfaces, nil },
	}
}

func (f *fakeIPHelper) notify(name string) notifyFunc {
	return func(family uint16, cb uintptr, ctx unsafe.Pointer, initial bool, h *windows.Handle) error {
		if family != windows.AF_UNSPEC || initial {
			f.t.Errorf("%s registered for family %d, initial notification %v", name, family, initial)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.context = uintptr(ctx)
		if name == f.failing {
			return f.err
		}
		if f.callbacks == nil {
			f.callbacks = make(map[string]uintptr)
		}
		f.callbacks[name] = cb
		*h = windows.Handle(len(f.callbacks))
		return nil
	}
}

// call invokes a registered callback as the system would, and fails the
// test if it does not return within 5 seconds.
func (f *fakeIPHelper) call(name string, row unsafe.Pointer, typ uint32) {
	f.t.Helper()
	f.mu.Lock()
	cb, ctx := f.callbacks[name], f.context
	f.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		syscall.SyscallN(cb, ctx, uintptr(row), uintptr(typ))
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		f.t.Fatalf("%s callback blocked the calling thread", name)
	}
}

func (f *fakeIPHelper) address(typ uint32, a string) {
	var row windows.MibUnicastIpAddressRow
	ip := netip.MustParseAddr(a)
	if ip.Is4() {
		sa := (*windows.RawSockaddrInet4)(unsafe.Pointer(&row.Address))
		sa.Family, sa.Addr = windows.AF_INET, ip.As4()
	} else {
		row.Address.Family, row.Address.Addr = windows.AF_INET6, ip.As16()
	}
	f.call("address", unsafe.Pointer(&row), typ)
}

func (f *fakeIPHelper) route(typ uint32, prefixLen uint8) {
	var row windows.MibIpForwardRow2
	row.DestinationPrefix.Prefix.Family = windows.AF_INET
	row.DestinationPrefix.PrefixLength = prefixLen
	f.call("route", unsafe.Pointer(&row), typ)
}

func (f *fakeIPHelper) iface(typ uint32, luid uint64) {
	row := windows.MibIpInterfaceRow{Family: windows.AF_INET, InterfaceLuid: luid}
	f.call("interface", unsafe.Pointer(&row), typ)
}

// changes collects Changes until their events add up to want, and fails
// if they do not within 5 seconds or overshoot.
func changes(t *testing.T, ch <-chan Change, want int) {
	t.Helper()
	got := 0
	timeout := time.After(5 * time.Second)
	for got < want {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d events", got, want)
			}
			got += c.Events
		case <-timeout:
			t.Fatalf("%d of %d events within 5s", got, want)
		}
	}
	if got != want {
		t.Fatalf("%d events, want %d", got, want)
	}
}

// TestWatchCallbacks drives Watch through its callbacks, called as the
// system calls them, since Wine never calls them: the filter's decisions
// reach the channel, a full queue never blocks the caller and still counts,
// and cancelling cancels every registration and leaves nothing behind.
func TestWatchCallbacks(t *testing.T) {
	before := runtime.NumGoroutine()
	f := &fakeIPHelper{
		t:          t,
		connected:  map[uint64]bool{5: true, 7: true, 99: true},
		interfaces: map[mibLink]bool{{luid: 5, family: windows.AF_INET}: true},
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// One window holds each burst below, however slowly Wine runs it.
	ch, err := watch(ctx, Config{Debounce: 500 * time.Millisecond, Logger: testLogger(t, "watch")}, f.api())
	if err != nil {
		t.Fatal(err)
	}

	f.address(mibAddInstance, "192.0.2.7")
	changes(t, ch, 1)

	// Irrelevant notifications, then relevant ones: only these count.
	f.address(mibAddInstance, "fe80::1c2d:3e4f:5a6b:7c8d")
	f.route(mibAddInstance, 24)
	f.iface(mibParameterNotification, 5) // connected when Watch began
	f.iface(mibParameterNotification, 6) // gone
	f.address(mibInitialNotification, "192.0.2.7")
	f.route(mibDeleteInstance, 0)
	f.address(mibDeleteInstance, "2001:db8::7")
	f.iface(mibParameterNotification, 7) // newly connected
	changes(t, ch, 3)

	// The filtering goroutine is stuck in a look-up while the queue
	// fills and overflows: callbacks still return at once.
	entered, release := make(chan struct{}), make(chan struct{})
	f.lookup = func() { close(entered); <-release }
	f.iface(mibParameterNotification, 99)
	<-entered
	for range queueLen + 5 {
		f.address(mibAddInstance, "192.0.2.8")
	}
	f.lookup = nil
	close(release)
	changes(t, ch, 1+queueLen+1) // interface 99, the queued, the overflow

	cancel()
	drainClosed(t, ch)
	if !slices.Equal(f.cancelled, []windows.Handle{1, 2, 3}) {
		t.Errorf("cancelled %v, want handles 1, 2, 3", f.cancelled)
	}
	if f.registered() {
		t.Error("notifier still registered after Watch stopped")
	}
	f.address(mibAddInstance, "192.0.2.9") // a late callback finds nobody
	waitGoroutines(t, before)
}

func TestWatchRegistrationFails(t *testing.T) {
	tests := []struct {
		failing   string
		err       error
		want      error
		name      string
		cancelled []windows.Handle
	}{
		{"interface", nil, errors.ErrUnsupported, "NotifyIpInterfaceChange", nil},
		{"address", windows.ERROR_NOT_SUPPORTED, windows.ERROR_NOT_SUPPORTED, "NotifyUnicastIpAddressChange", []windows.Handle{1}},
		{"route", nil, errors.ErrUnsupported, "NotifyRouteChange2", []windows.Handle{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.failing, func(t *testing.T) {
			f := &fakeIPHelper{t: t, failing: tt.failing, err: tt.err}
			ch, err := watch(t.Context(), Config{}, f.api())
			if ch != nil || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.name) {
				t.Fatalf("watch = %v, %v; want an error naming %s wrapping %v", ch, err, tt.name, tt.want)
			}
			if !slices.Equal(f.cancelled, tt.cancelled) {
				t.Errorf("cancelled %v, want %v", f.cancelled, tt.cancelled)
			}
			if f.registered() {
				t.Error("notifier still registered after a failed Watch")
			}
		})
	}
}

// TestIPInterfaceLookups runs the look-ups the filter makes. Wine 8 lacks
// GetIpInterfaceEntry and answers GetIpInterfaceTable with "request not
// supported": both must say so with an error, not panic. On Windows the
// loopback interface is listed, connected, and looked up alike.
func TestIPInterfaceLookups(t *testing.T) {
	const loopback = 24 // IF_TYPE_SOFTWARE_LOOPBACK, the LUID's top 16 bits
	ifs, listErr := ipInterfaces()
	up, entryErr := interfaceConnected(windows.AF_INET, loopback<<48) // Wine: any LUID
	if wintest.UnderWine() {
		if listErr == nil || entryErr == nil {
			t.Fatalf("under Wine: list %v, %v; entry %v, %v; want two errors", ifs, listErr, up, entryErr)
		}
		t.Logf("under Wine, as expected: %v; %v", listErr, entryErr)
		return
	}
	if listErr != nil {
		t.Fatal(listErr)
	}
	found := false
	for k, connected := range ifs {
		if k.luid>>48 != loopback || k.family != windows.AF_INET {
			continue
		}
		found = true
		up, err := interfaceConnected(k.family, k.luid)
		if err != nil || !up || !connected {
			t.Errorf("loopback %#x: listed connected %v, looked up %v, %v", k.luid, connected, up, err)
		}
	}
	if !found {
		t.Errorf("no IPv4 loopback interface among %d", len(ifs))
	}
}
