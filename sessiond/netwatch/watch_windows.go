package netwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// queueLen is how many notifications wait for the filtering goroutine.
// When it is full a callback drops its notification and marks the queue
// as overflowed, which counts as one change, so that the system's thread
// never waits on ours.
const queueLen = 64

// Watch registers with Windows' IP helper for changes of IP interfaces
// (NotifyIpInterfaceChange), unicast addresses
// (NotifyUnicastIpAddressChange; interface notifications do not report
// addresses) and routes (NotifyRouteChange2; nor do they report a new
// default gateway), and delivers one Change per burst of relevant
// notifications (see Config.Debounce and mibFilter).
//
// A registration that succeeds without a handle is a stub that will never
// call back (Wine 8 implements all three so); Watch then fails with an
// error wrapping errors.ErrUnsupported rather than watching nothing.
//
// The channel is closed when ctx is done, after the notifications are
// cancelled and the goroutines Watch started have exited.
func Watch(ctx context.Context, cfg Config) (<-chan Change, error) {
	if err := available("NotifyIpInterfaceChange", "NotifyUnicastIpAddressChange", "NotifyRouteChange2", "CancelMibChangeNotify2"); err != nil {
		return nil, fmt.Errorf("netwatch: %w", err)
	}
	return watch(ctx, cfg, systemIPHelper)
}

// iphlpapi is the DLL the IP helper functions are in.
var iphlpapi = windows.NewLazySystemDLL("iphlpapi.dll")

// available checks that iphlpapi.dll exports the named functions. Every
// Windows Watch supports does; Wine lacks some, and x/sys/windows panics
// when called for a missing one.
func available(names ...string) error {
	for _, name := range names {
		if err := iphlpapi.NewProc(name).Find(); err != nil {
			return fmt.Errorf("iphlpapi.dll has no %s: %w", name, errors.ErrUnsupported)
		}
	}
	return nil
}

// ipHelper is the part of the IP helper API Watch uses. Tests replace it
// to call back as the system would.
type ipHelper struct {
	// notifyInterface, notifyAddress and notifyRoute have the signature of
	// NotifyIpInterfaceChange and its siblings.
	notifyInterface, notifyAddress, notifyRoute notifyFunc
	cancel                                      func(windows.Handle) error
	// connected reports whether an IP interface is connected to a network.
	connected func(family uint16, luid uint64) (bool, error)
	// interfaces lists the IP interfaces and whether each is connected.
	interfaces func() (map[mibLink]bool, error)
}

type notifyFunc func(family uint16, callback uintptr, callerContext unsafe.Pointer, initial bool, handle *windows.Handle) error

var systemIPHelper = ipHelper{
	notifyInterface: windows.NotifyIpInterfaceChange,
	notifyAddress:   windows.NotifyUnicastIpAddressChange,
	notifyRoute:     windows.NotifyRouteChange2,
	cancel:          windows.CancelMibChangeNotify2,
	connected:       interfaceConnected,
	interfaces:      ipInterfaces,
}

// watch is Watch with the IP helper API given.
func watch(ctx context.Context, cfg Config, api ipHelper) (<-chan Change, error) {
	w, err := register(api, cfg.logger())
	if err != nil {
		return nil, err
	}
	if links, err := api.interfaces(); err != nil {
		w.log.Debug("netwatch: cannot list IP interfaces; each counts once when first seen connected", "err", err)
	} else {
		for k, up := range links {
			w.filter.links.set(k, up)
		}
	}
	out := make(chan Change, 1)
	go w.run(ctx, cfg.debounce(), out)
	return out, nil
}

// watcher is one Watch's registrations. Immutable after register except
// filter, which belongs to the filtering goroutine.
type watcher struct {
	api     ipHelper
	log     *slog.Logger
	key     uintptr          // its key in registered, passed as the callbacks' context
	n       *notifier        // what the callbacks reach
	handles []windows.Handle // one per registration, cancelled by unregister
	filter  mibFilter
}

// notifier is what a callback, running on a system thread, reaches through
// registered: it copies the row into events without blocking, or marks
// lost when the queue is full.
type notifier struct {
	events chan mibEvent
	lost   atomic.Bool
}

// registered maps a callback's context to its notifier. The system holds
// only the context, a number the callback looks up, never dereferences:
// a callback that comes late finds nothing and returns.
var registered sync.Map // uintptr → *notifier

// callbacks are made once per process: syscall.NewCallback never frees one.
var callbacks = sync.OnceValue(func() [3]uintptr {
	return [3]uintptr{
		syscall.NewCallback(onInterfaceChange),
		syscall.NewCallback(onAddressChange),
		syscall.NewCallback(onRouteChange),
	}
})

// register makes the three registrations, or none: on failure it cancels
// those already made.
func register(api ipHelper, log *slog.Logger) (*watcher, error) {
	n := &notifier{events: make(chan mibEvent, queueLen)}
	w := &watcher{api: api, log: log, key: uintptr(unsafe.Pointer(n)), n: n}
	registered.Store(w.key, n)
	cbs := callbacks()
	regs := []struct {
		name   string
		notify notifyFunc
		cb     uintptr
	}{
		{"NotifyIpInterfaceChange", api.notifyInterface, cbs[0]},
		{"NotifyUnicastIpAddressChange", api.notifyAddress, cbs[1]},
		{"NotifyRouteChange2", api.notifyRoute, cbs[2]},
	}
	for _, r := range regs {
		var h windows.Handle
		err := r.notify(windows.AF_UNSPEC, r.cb, unsafe.Pointer(n), false, &h)
		if err == nil && h == 0 {
			err = fmt.Errorf("succeeded without a notification handle: a stub that never calls back, as in Wine: %w", errors.ErrUnsupported)
		}
		if err != nil {
			w.unregister()
			return nil, fmt.Errorf("netwatch: %s: %w", r.name, err)
		}
		w.handles = append(w.handles, h)
	}
	return w, nil
}

// unregister cancels the registrations, which waits for callbacks in
// progress, and forgets the notifier, so that none can reach it after.
func (w *watcher) unregister() {
	for _, h := range w.handles {
		if err := w.api.cancel(h); err != nil {
			w.log.Warn("netwatch: cancelling a change notification failed", "err", err)
		}
	}
	w.handles = nil
	registered.Delete(w.key)
}

// run owns the registrations and out. It debounces until ctx is done,
// then shuts down in order: cancel the registrations (no callback runs
// after that), stop the filtering goroutine and wait for it, and only then
// close out.
func (w *watcher) run(ctx context.Context, window time.Duration, out chan<- Change) {
	counts := make(chan int)
	stop := make(chan struct{})
	filterDone := make(chan struct{})
	go func() {
		defer close(filterDone)
		w.filterEvents(counts, stop)
	}()
	debounce(ctx, counts, window, out)
	w.unregister()
	close(stop)
	<-filterDone
	close(out)
}

// filterEvents takes the callbacks' notifications, looks up what their
// rows leave out, and sends the number of relevant ones to counts until
// stop is closed.
func (w *watcher) filterEvents(counts chan<- int, stop <-chan struct{}) {
	for {
		var ev mibEvent
		select {
		case ev = <-w.n.events:
		case <-stop:
			return
		}
		n := w.count(ev)
		if w.n.lost.Swap(false) {
			w.log.Debug("netwatch: change notifications lost, queue full")
			n++
		}
		if n == 0 {
			continue
		}
		select {
		case counts <- n:
		case <-stop:
			return
		}
	}
}

// count returns 1 if ev describes a network change, else 0. An interface
// parameter notification's row holds only the interface's keys, so its
// connected state is looked up here, off the system's thread.
func (w *watcher) count(ev mibEvent) int {
	if ev.kind == mibInterface && ev.typ == mibParameterNotification {
		up, err := w.api.connected(ev.family, ev.luid)
		if err != nil {
			// Gone already; its removal is notified too.
			w.log.Debug("netwatch: IP interface changed and vanished", "err", err)
			return 0
		}
		ev.connected = up
	}
	if w.filter.relevant(ev) {
		return 1
	}
	return 0
}

// deliver hands ev to the notifier registered under key without blocking.
// It runs on the system's thread.
func deliver(key uintptr, ev mibEvent) {
	v, ok := registered.Load(key)
	if !ok {
		return
	}
	n := v.(*notifier)
	select {
	case n.events <- ev:
	default:
		n.lost.Store(true)
	}
}

// onInterfaceChange, onAddressChange and onRouteChange are the callbacks
// the system calls on one of its threads. They copy what the filter needs
// out of the row, which is only lent for the call, and return at once.
func onInterfaceChange(key uintptr, row *windows.MibIpInterfaceRow, typ uintptr) uintptr {
	ev := mibEvent{kind: mibInterface, typ: uint32(typ)}
	if row != nil {
		ev.family, ev.luid = row.Family, row.InterfaceLuid
	}
	deliver(key, ev)
	return 0
}

func onAddressChange(key uintptr, row *windows.MibUnicastIpAddressRow, typ uintptr) uintptr {
	ev := mibEvent{kind: mibAddress, typ: uint32(typ)}
	if row != nil {
		ev.family, ev.luid = row.Address.Family, row.InterfaceLuid
		ev.addr = sockaddrInetAddr(unsafe.Pointer(&row.Address))
	}
	deliver(key, ev)
	return 0
}

func onRouteChange(key uintptr, row *windows.MibIpForwardRow2, typ uintptr) uintptr {
	ev := mibEvent{kind: mibRoute, typ: uint32(typ)}
	if row != nil {
		ev.family, ev.luid = row.DestinationPrefix.Prefix.Family, row.InterfaceLuid
		ev.prefixLen = row.DestinationPrefix.PrefixLength
	}
	deliver(key, ev)
	return 0
}

// sockaddrInetAddr reads the address out of a SOCKADDR_INET, the union of
// an IPv4 and an IPv6 socket address that starts with the family.
func sockaddrInetAddr(sa unsafe.Pointer) netip.Addr {
	switch (*windows.RawSockaddr)(sa).Family {
	case windows.AF_INET:
		return netip.AddrFrom4((*windows.RawSockaddrInet4)(sa).Addr)
	case windows.AF_INET6:
		return netip.AddrFrom16((*windows.RawSockaddrInet6)(sa).Addr)
	}
	return netip.Addr{}
}

// interfaceConnected looks up whether an IP interface is connected.
func interfaceConnected(family uint16, luid uint64) (bool, error) {
	if err := available("GetIpInterfaceEntry"); err != nil {
		return false, err
	}
	row := windows.MibIpInterfaceRow{Family: family, InterfaceLuid: luid}
	if err := windows.GetIpInterfaceEntry(&row); err != nil {
		return false, fmt.Errorf("GetIpInterfaceEntry: %w", err)
	}
	return row.Connected != 0, nil
}

// ipInterfaces lists the IP interfaces of both families and whether each
// is connected.
func ipInterfaces() (map[mibLink]bool, error) {
	if err := available("GetIpInterfaceTable", "FreeMibTable"); err != nil {
		return nil, err
	}
	var table *windows.MibIpInterfaceTable
	if err := windows.GetIpInterfaceTable(windows.AF_UNSPEC, &table); err != nil {
		return nil, fmt.Errorf("GetIpInterfaceTable: %w", err)
	}
	defer windows.FreeMibTable(unsafe.Pointer(table))
	rows := unsafe.Slice(&table.Table[0], table.NumEntries)
	links := make(map[mibLink]bool, len(rows))
	for _, r := range rows {
		links[mibLink{luid: r.InterfaceLuid, family: r.Family}] = r.Connected != 0
	}
	return links, nil
}
