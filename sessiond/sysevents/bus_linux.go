package sysevents

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// The system bus's standard socket, used when neither Config.Bus nor
// $DBUS_SYSTEM_BUS_ADDRESS names one.
const systemBusAddress = "unix:path=/var/run/dbus/system_bus_socket"

// How long the watcher waits before dialling the bus again after it could
// not reach it or lost it, doubling up to the most.
const (
	redialFirst = time.Second
	redialMost  = time.Minute
)

// callTimeout bounds each call to logind or NetworkManager, so a wedged
// service cannot stop the watcher from hearing the next signal.
const callTimeout = 5 * time.Second

// Names on the bus.
const (
	busName    = "org.freedesktop.DBus"
	login1Name = "org.freedesktop.login1"
	nmName     = "org.freedesktop.NetworkManager"
)

// busAddress is the address the watcher dials.
func (c Config) busAddress() string {
	if c.Bus != "" {
		return c.Bus
	}
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return a
	}
	return systemBusAddress
}

// run dials the system bus and watches it until ctx ends, dialling again
// when the bus goes away (a restarted dbus-daemon drops every client).
// Only the first failure in a row is a warning. The wait between dials
// doubles until a connection has lasted redialMost, so a bus that drops
// the watcher at once is not dialled every second.
func (w *Watcher) run(ctx context.Context) {
	addr := w.cfg.busAddress()
	wait, failing := redialFirst, false
	for {
		q := newSignalQueue()
		conn, err := dbus.Connect(addr, dbus.WithContext(ctx), dbus.WithSignalHandler(q))
		if err == nil {
			if failing {
				w.log.Info("sysevents: reached the system bus", "bus", addr)
			}
			began := time.Now()
			(&session{w: w, conn: conn, q: q}).watch(ctx)
			conn.Close()
			if time.Since(began) >= redialMost {
				wait = redialFirst
			}
			if ctx.Err() == nil {
				w.log.Warn("sysevents: lost the system bus; dialling it again", "bus", addr)
			}
		} else if ctx.Err() == nil {
			if !failing {
				w.log.Warn("sysevents: cannot reach the system bus: sleep, shutdown and metered networks go unnoticed until it answers", "bus", addr, "err", err)
			} else {
				w.log.Debug("sysevents: the system bus still does not answer", "bus", addr, "err", err)
			}
		}
		failing = true
		if !sleepCtx(ctx, wait) {
			return
		}
		wait = min(2*wait, redialMost)
	}
}

// sleepCtx waits for d or ctx, whichever ends first, and reports whether
// d did.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// signalQueue is the connection's signal handler: it queues signals in
// the order the bus sent them, without ever blocking the connection's
// reader. (godbus's default handler hands a signal to a new goroutine
// when the channel is full, which can reorder PrepareForSleep(true) and
// (false).) Only signals matching the watcher's rules arrive, a handful
// per sleep, so the queue needs no bound.
type signalQueue struct {
	mu    sync.Mutex
	queue []*dbus.Signal
	ready chan struct{} // has a token while queue is not empty
}

func newSignalQueue() *signalQueue { return &signalQueue{ready: make(chan struct{}, 1)} }

// DeliverSignal implements dbus.SignalHandler.
func (q *signalQueue) DeliverSignal(_, _ string, s *dbus.Signal) {
	q.mu.Lock()
	q.queue = append(q.queue, s)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take empties the queue.
func (q *signalQueue) take() []*dbus.Signal {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.queue
	q.queue = nil
	return s
}

// session is the watcher's state for one connection to the bus; the run
// goroutine owns all of it.
type session struct {
	w    *Watcher
	conn *dbus.Conn
	q    *signalQueue

	// The unique names owning login1 and NetworkManager; empty while
	// none. Only signals from these senders count: any client of the
	// system bus may send a signal to the watcher's own name, and the
	// bus lets it through whatever the match rules say.
	logind string
	nm     string
	lock   *os.File // the delay inhibitor held while nothing is under way
	hold   *hold    // the last Sleep's or Shutdown's delay
	// metadataSeen: a PrepareForShutdownWithMetadata(true) was delivered,
	// so the PrepareForShutdown(true) logind sends after it is the same
	// shutdown.
	metadataSeen  bool
	inhibitWarned bool // the failure to take an inhibitor was logged
}

// match rules: logind's manager signals, NetworkManager's property
// changes, and both names coming and going. Rules naming a well-known
// sender follow its owner across restarts.
func (s *session) matches() [][]dbus.MatchOption {
	return [][]dbus.MatchOption{
		{dbus.WithMatchSender(login1Name), dbus.WithMatchObjectPath(login1Path), dbus.WithMatchInterface(login1Manager)},
		{dbus.WithMatchSender(nmName), dbus.WithMatchObjectPath(nmPath), dbus.WithMatchInterface(propsIface), dbus.WithMatchMember("PropertiesChanged"), dbus.WithMatchArg(0, nmName)},
		{dbus.WithMatchSender(busName), dbus.WithMatchInterface(busName), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, login1Name)},
		{dbus.WithMatchSender(busName), dbus.WithMatchInterface(busName), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, nmName)},
	}
}

// watch subscribes, looks at what is there now, then handles signals
// until ctx ends or the connection closes. It closes the idle inhibitor
// when it returns; a Sleep's or Shutdown's delay still held then ends on
// its own (Release, MaxDelay), or at once if the watcher is closing.
func (s *session) watch(ctx context.Context) {
	defer s.letGo(ctx)
	for _, m := range s.matches() {
		if err := s.conn.AddMatchSignalContext(ctx, m...); err != nil {
			s.w.log.Warn("sysevents: the system bus refused a subscription", "err", err)
			return
		}
	}
	s.logind = s.owner(ctx, login1Name)
	if s.logind != "" {
		s.takeLock(ctx)
	} else {
		s.w.log.Warn("sysevents: logind (org.freedesktop.login1) is not on the system bus: sleep and shutdown go unannounced until it is")
	}
	s.nm = s.owner(ctx, nmName)
	if s.nm != "" {
		s.readMetered(ctx)
	} else {
		s.w.log.Warn("sysevents: NetworkManager is not on the system bus: whether the connection is metered stays unknown until it is")
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.conn.Context().Done():
			return
		case <-s.q.ready:
			for _, sig := range s.q.take() {
				s.handle(ctx, sig)
			}
		}
	}
}

// owner is the unique name owning name on the bus now; empty when none
// (the bus answers NameHasNoOwner) or when the bus cannot say.
func (s *session) owner(ctx context.Context, name string) string {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var owner string
	err := s.conn.BusObject().CallWithContext(ctx, busName+".GetNameOwner", 0, name).Store(&owner)
	if err != nil {
		s.w.log.Debug("sysevents: no owner", "name", name, "err", err)
		return ""
	}
	return owner
}

// handle dispatches one signal from a sender it trusts for it: the bus
// itself for NameOwnerChanged, logind's and NetworkManager's current
// owners for theirs.
func (s *session) handle(ctx context.Context, sig *dbus.Signal) {
	from := map[string]string{
		busName + ".NameOwnerChanged":                     busName,
		login1Manager + ".PrepareForSleep":                s.logind,
		login1Manager + ".PrepareForShutdownWithMetadata": s.logind,
		login1Manager + ".PrepareForShutdown":             s.logind,
		propsIface + ".PropertiesChanged":                 s.nm,
	}[sig.Name]
	if from == "" || sig.Sender != from {
		s.w.log.Debug("sysevents: ignored a signal", "name", sig.Name, "sender", sig.Sender)
		return
	}
	switch sig.Name {
	case busName + ".NameOwnerChanged":
		s.ownerChanged(ctx, sig)
	case login1Manager + ".PrepareForSleep":
		if start, ok := boolArg(sig); ok {
			s.prepareForSleep(ctx, start)
		}
	case login1Manager + ".PrepareForShutdownWithMetadata":
		if start, ok := boolArg(sig); ok && len(sig.Body) == 2 {
			md, _ := sig.Body[1].(map[string]dbus.Variant)
			s.prepareForShutdown(ctx, start, md, true)
		}
	case login1Manager + ".PrepareForShutdown":
		if start, ok := boolArg(sig); ok {
			s.prepareForShutdown(ctx, start, nil, false)
		}
	case propsIface + ".PropertiesChanged":
		if sig.Path == nmPath {
			s.nmPropertiesChanged(ctx, sig)
		}
	}
}

// boolArg is a signal's first argument as a bool.
func boolArg(sig *dbus.Signal) (bool, bool) {
	if len(sig.Body) == 0 {
		return false, false
	}
	b, ok := sig.Body[0].(bool)
	return b, ok
}

// ownerChanged follows logind and NetworkManager leaving and coming back.
func (s *session) ownerChanged(ctx context.Context, sig *dbus.Signal) {
	var name, from, to string
	if err := dbus.Store(sig.Body, &name, &from, &to); err != nil {
		return
	}
	switch name {
	case login1Name:
		s.closeLock()
		s.hold.release()
		s.logind = to
		if to == "" {
			s.w.log.Warn("sysevents: logind left the system bus: sleep and shutdown go unannounced until it returns")
			return
		}
		s.w.log.Info("sysevents: logind is on the system bus", "owner", to)
		s.inhibitWarned = false
		s.takeLock(ctx)
	case nmName:
		s.nm = to
		if to == "" {
			s.w.log.Warn("sysevents: NetworkManager left the system bus: keeping the last metered state until it returns", "metered", s.w.Metered())
			return
		}
		s.w.log.Info("sysevents: NetworkManager is on the system bus", "owner", to)
		s.readMetered(ctx)
	}
}

// letGo closes the idle inhibitor, which a new connection takes again,
// and when the watcher is closing the delay still held, since nobody
// will release it.
func (s *session) letGo(ctx context.Context) {
	s.closeLock()
	if ctx.Err() != nil {
		s.hold.release()
	}
}
