package sysevents

import (
	"context"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/readymesh/readymesh/sessiond/sysevents/fakesys"
)

// start runs a watcher on b's bus with the given MaxDelay, closed when
// the test ends.
func start(t *testing.T, b *fakesys.Bus, maxDelay time.Duration) (*Watcher, *logs) {
	t.Helper()
	log, l := newLogs(t)
	w, err := Start(context.Background(), Config{Logger: log, MaxDelay: maxDelay, Bus: b.Address()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, l
}

// ctx is a context bounded by wait.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return c
}

// next is the watcher's next event, failing the test if none comes.
func next(t *testing.T, w *Watcher) Event {
	t.Helper()
	select {
	case e, ok := <-w.Events():
		if !ok {
			t.Fatal("the events channel closed")
		}
		return e
	case <-time.After(wait):
		t.Fatal("no event")
	}
	return Event{}
}

// expect fails the test unless e is of kind k with the detail given.
func expect(t *testing.T, e Event, k Kind, detail string) {
	t.Helper()
	if e.Kind != k || e.Detail != detail || e.At.IsZero() {
		t.Fatalf("event %v %q at %v, want %v %q", e.Kind, e.Detail, e.At, k, detail)
	}
}

// held waits for the watcher's idle inhibitor.
func held(t *testing.T, b *fakesys.Bus) {
	t.Helper()
	if err := b.WaitInhibitors(ctx(t), 1); err != nil {
		t.Fatal(err)
	}
}

// sleeping runs b.Sleep in the background.
func sleeping(t *testing.T, b *fakesys.Bus) <-chan error {
	done := make(chan error, 1)
	c := ctx(t)
	go func() {
		_, err := b.Sleep(c)
		done <- err
	}()
	return done
}

// TestSleepHeldUntilRelease: the watcher holds a delay inhibitor named
// for the agent; a sleep is delivered while the inhibitor still holds the
// system, which goes on only after Release; on resume the watcher takes a
// new inhibitor.
func TestSleepHeldUntilRelease(t *testing.T) {
	b := fakesys.Start(t)
	w, _ := start(t, b, fakesys.DelayMax)
	held(t, b)
	want := fakesys.Inhibitor{What: "sleep:shutdown", Who: "readymesh sessiond", Why: "telling the broker before the machine goes", Mode: "delay"}
	if list := b.InhibitorList(); len(list) != 1 || list[0] != want {
		t.Errorf("inhibitors %+v, want %+v", list, want)
	}

	slept := sleeping(t, b)
	e := next(t, w)
	expect(t, e, Sleep, "")
	if n := b.Inhibitors(); n != 1 {
		t.Fatalf("%d delay inhibitors while the agent has not released the sleep, want 1", n)
	}
	select {
	case err := <-slept:
		t.Fatalf("the system went to sleep (%v) before Release", err)
	default:
	}
	e.Release()
	if err := <-slept; err != nil {
		t.Fatalf("after Release: %v", err)
	}
	e.Release() // again: nothing happens

	taken := b.Taken()
	b.Wake()
	expect(t, next(t, w), Resume, "")
	if err := b.WaitTaken(ctx(t), taken+1); err != nil {
		t.Fatal(err)
	}
	held(t, b)

	// And the next sleep is held again.
	slept = sleeping(t, b)
	e = next(t, w)
	expect(t, e, Sleep, "")
	e.Release()
	if err := <-slept; err != nil {
		t.Fatalf("second sleep: %v", err)
	}
}

// TestSleepMaxDelay: a sleep nobody releases is let go after MaxDelay,
// with a warning, and not before.
func TestSleepMaxDelay(t *testing.T) {
	const maxDelay = 300 * time.Millisecond
	b := fakesys.Start(t)
	w, l := start(t, b, maxDelay)
	held(t, b)
	var waited time.Duration
	done := make(chan error, 1)
	c := ctx(t)
	go func() {
		var err error
		waited, err = b.Sleep(c)
		done <- err
	}()
	e := next(t, w)
	expect(t, e, Sleep, "")
	if err := <-done; err != nil {
		t.Fatalf("sleep never released: %v", err)
	}
	if waited < maxDelay {
		t.Errorf("the system went on after %v, before MaxDelay %v", waited, maxDelay)
	}
	if l.count(slog.LevelWarn, "delay ran out") != 1 {
		t.Errorf("no warning that the delay ran out")
	}
	e.Release() // late: nothing happens
}

// TestLidClosed: a sleep with the lid closed says so.
func TestLidClosed(t *testing.T) {
	b := fakesys.Start(t)
	w, _ := start(t, b, 0)
	held(t, b)
	b.SetLid(true)
	slept := sleeping(t, b)
	e := next(t, w)
	expect(t, e, Sleep, "lid closed")
	e.Release()
	if err := <-slept; err != nil {
		t.Fatal(err)
	}
}

// TestShutdown: a reboot and a power-off are delivered once each, with
// their kind, from the metadata logind sends since systemd 255 or from
// ScheduledShutdown before it; each is held until Release, and a
// cancelled shutdown is a Resume after which the inhibitor is taken
// again.
func TestShutdown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		old    bool
		reboot bool
		detail string
	}{
		{"reboot", false, true, "reboot"},
		{"power-off", false, false, "power-off"},
		{"reboot, old logind", true, true, "reboot"},
		{"power-off, old logind", true, false, "power-off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fakesys.Start(t)
			b.SetOldLogind(tc.old)
			if tc.old {
				kind := map[bool]string{true: "reboot", false: "poweroff"}[tc.reboot]
				b.ScheduleShutdown(kind, time.Now())
			}
			w, _ := start(t, b, fakesys.DelayMax)
			held(t, b)
			b.Shutdown(tc.reboot)
			e := next(t, w)
			expect(t, e, Shutdown, tc.detail)
			if e.Reboot != tc.reboot {
				t.Errorf("Reboot %v, want %v", e.Reboot, tc.reboot)
			}
			if n := b.Inhibitors(); n != 1 {
				t.Fatalf("%d delay inhibitors before Release, want 1", n)
			}
			e.Release()
			if _, err := b.WaitReleased(ctx(t)); err != nil {
				t.Fatal(err)
			}
			taken := b.Taken()
			b.CancelShutdown()
			// The next event is the cancellation: the plain
			// PrepareForShutdown after the metadata one was no second
			// shutdown.
			expect(t, next(t, w), Resume, "shutdown cancelled")
			if err := b.WaitTaken(ctx(t), taken+1); err != nil {
				t.Fatal(err)
			}
			held(t, b)
		})
	}
}

// TestShutdownUnknownKind: an old logind with nothing scheduled still
// announces the shutdown, without saying which.
func TestShutdownUnknownKind(t *testing.T) {
	b := fakesys.Start(t)
	b.SetOldLogind(true)
	w, _ := start(t, b, 0)
	held(t, b)
	b.Shutdown(true)
	e := next(t, w)
	expect(t, e, Shutdown, "")
	if e.Reboot {
		t.Error("a reboot, though nothing said so")
	}
	e.Release()
}

// TestMetered: NetworkManager's Metered changes are delivered when the
// metered state changes, and Metered follows; an unmetered connection at
// start is no event.
func TestMetered(t *testing.T) {
	b := fakesys.Start(t)
	w, _ := start(t, b, 0)
	held(t, b)
	b.SetMetered(true)
	e := next(t, w)
	expect(t, e, Metered, "metered connection")
	if !e.Metered || !w.Metered() {
		t.Errorf("event says metered %v, Metered() %v; want both true", e.Metered, w.Metered())
	}
	b.SetMeteredValue(3) // guessed yes: still metered, no event
	b.SetMeteredValue(4) // guessed no
	e = next(t, w)
	expect(t, e, Metered, "unmetered (guessed)")
	if e.Metered || w.Metered() {
		t.Errorf("event says metered %v, Metered() %v; want both false", e.Metered, w.Metered())
	}
	b.SetMeteredValue(3)
	expect(t, next(t, w), Metered, "metered connection (guessed)")
}

// TestMeteredAtStart: a connection metered when the watcher starts is
// delivered as a Metered event.
func TestMeteredAtStart(t *testing.T) {
	b := fakesys.Start(t)
	b.SetMetered(true)
	w, _ := start(t, b, 0)
	e := next(t, w)
	expect(t, e, Metered, "metered connection")
	if !w.Metered() {
		t.Error("Metered() false after the event")
	}
}

// TestServicesComeAndGo: a watcher started while logind and
// NetworkManager are off the bus says so once and picks each up when it
// appears; when logind leaves, the watcher drops its inhibitor and takes
// a new one from the logind that returns; NetworkManager leaving keeps
// the last metered state.
func TestServicesComeAndGo(t *testing.T) {
	b := fakesys.Start(t)
	b.StopLogind()
	b.StopNetworkManager()
	b.SetMetered(true)
	w, l := start(t, b, 0)
	l.waitFor(slog.LevelWarn, "logind (org.freedesktop.login1) is not on the system bus")
	l.waitFor(slog.LevelWarn, "NetworkManager is not on the system bus")

	b.StartNetworkManager()
	e := next(t, w)
	expect(t, e, Metered, "metered connection")
	b.StartLogind()
	held(t, b)

	b.StopLogind()
	if err := b.WaitInhibitors(ctx(t), 0); err != nil {
		t.Fatalf("the watcher kept the inhibitor of a logind that left: %v", err)
	}
	b.StartLogind()
	held(t, b)
	slept := sleeping(t, b)
	e = next(t, w)
	expect(t, e, Sleep, "")
	e.Release()
	if err := <-slept; err != nil {
		t.Fatal(err)
	}

	b.StopNetworkManager()
	b.SetMetered(false)
	b.StartNetworkManager()
	expect(t, next(t, w), Metered, "unmetered")
}

// TestBusAbsent: with no bus, Start works, warns once, delivers nothing,
// and Close ends it.
func TestBusAbsent(t *testing.T) {
	log, l := newLogs(t)
	w, err := Start(context.Background(), Config{Logger: log, Bus: "unix:path=" + filepath.Join(t.TempDir(), "no-bus")})
	if err != nil {
		t.Fatalf("Start without a bus: %v", err)
	}
	l.waitFor(slog.LevelWarn, "cannot reach the system bus")
	if n := l.count(slog.LevelWarn, "cannot reach the system bus"); n != 1 {
		t.Errorf("%d warnings that the bus is missing, want 1", n)
	}
	if w.Metered() {
		t.Error("metered with nothing to tell")
	}
	w.Close()
	if _, ok := <-w.Events(); ok {
		t.Error("an event without a bus")
	}
	w.Close() // twice is fine
}

// TestBusComesAndGoes: a watcher started before the bus reaches it when
// it comes; when the bus restarts it reconnects and holds a new
// inhibitor, the old one closed.
func TestBusComesAndGoes(t *testing.T) {
	b := fakesys.Start(t)
	b.Stop()
	w, l := start(t, b, 0)
	l.waitFor(slog.LevelWarn, "cannot reach the system bus")
	b.Restart()
	held(t, b)
	if l.count(slog.LevelWarn, "cannot reach the system bus") != 1 || l.count(slog.LevelInfo, "reached the system bus") != 1 {
		t.Error("the watcher did not say it waited for the bus and reached it")
	}

	taken := b.Taken()
	b.Restart()
	if err := b.WaitTaken(ctx(t), taken+1); err != nil {
		t.Fatal(err)
	}
	held(t, b)
	slept := sleeping(t, b)
	e := next(t, w)
	expect(t, e, Sleep, "")
	e.Release()
	if err := <-slept; err != nil {
		t.Fatal(err)
	}
}

// TestCloseReleases: closing the watcher lets a held sleep go and closes
// the events channel.
func TestCloseReleases(t *testing.T) {
	b := fakesys.Start(t)
	w, _ := start(t, b, fakesys.DelayMax)
	held(t, b)
	slept := sleeping(t, b)
	expect(t, next(t, w), Sleep, "")
	w.Close()
	if err := <-slept; err != nil {
		t.Fatalf("after Close: %v", err)
	}
	if _, ok := <-w.Events(); ok {
		t.Error("events still open after Close")
	}
	if n := b.Inhibitors(); n != 0 {
		t.Errorf("%d inhibitors after Close, want 0", n)
	}
}

// TestShutdownKind and TestNMMetered: the names logind and NetworkManager
// use, mapped.
func TestShutdownKind(t *testing.T) {
	for _, tc := range []struct {
		in     string
		detail string
		reboot bool
	}{
		{"reboot", "reboot", true}, {"kexec", "reboot", true}, {"soft-reboot", "reboot", true},
		{"dry-reboot", "reboot", true}, {"poweroff", "power-off", false}, {"dry-poweroff", "power-off", false},
		{"halt", "halt", false}, {"", "", false}, {"suspend", "", false},
	} {
		if d, r := shutdownKind(tc.in); d != tc.detail || r != tc.reboot {
			t.Errorf("shutdownKind(%q) = %q, %v; want %q, %v", tc.in, d, r, tc.detail, tc.reboot)
		}
	}
}

func TestNMMetered(t *testing.T) {
	for v, want := range map[uint32]bool{0: false, 1: true, 2: false, 3: true, 4: false, 9: false} {
		if got, _ := nmMetered(v); got != want {
			t.Errorf("NMMetered %d: metered %v, want %v", v, got, want)
		}
	}
}

// TestSpoofedSignals: a client of the bus that is neither logind nor
// NetworkManager, sending their signals straight to every connection,
// is ignored; the next event is the real one.
func TestSpoofedSignals(t *testing.T) {
	b := fakesys.Start(t)
	w, _ := start(t, b, 0)
	held(t, b)
	conn, err := dbus.Connect(b.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var names []string
	if err := conn.BusObject().Call("org.freedesktop.DBus.ListNames", 0).Store(&names); err != nil {
		t.Fatal(err)
	}
	spoof := func(dest string, path dbus.ObjectPath, name string, body ...any) {
		i := strings.LastIndex(name, ".")
		msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldDestination: dbus.MakeVariant(dest),
			dbus.FieldPath:        dbus.MakeVariant(path),
			dbus.FieldInterface:   dbus.MakeVariant(name[:i]),
			dbus.FieldMember:      dbus.MakeVariant(name[i+1:]),
			dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(body...)),
		}, Body: body}
		if call := conn.Send(msg, nil); call.Err != nil {
			t.Fatal(call.Err)
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, ":") || n == conn.Names()[0] {
			continue
		}
		spoof(n, login1Path, login1Manager+".PrepareForSleep", true)
		spoof(n, nmPath, propsIface+".PropertiesChanged", nmName, map[string]dbus.Variant{"Metered": dbus.MakeVariant(uint32(1))}, []string{})
		spoof(n, "/org/freedesktop/DBus", busName+".NameOwnerChanged", login1Name, ":1.1", "")
	}
	// A round trip through the bus: it has passed the spoofed signals on
	// before it answers, so they reach the watcher before the real one.
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Err; err != nil {
		t.Fatal(err)
	}
	b.SetMetered(true)
	expect(t, next(t, w), Metered, "metered connection")
	if n := b.Inhibitors(); n != 1 {
		t.Errorf("%d inhibitors after the spoofing, want the watcher's 1", n)
	}
}

// TestNoLeaks: after Close, none of the watcher's goroutines remain.
func TestNoLeaks(t *testing.T) {
	b := fakesys.Start(t)
	w, _ := start(t, b, 0)
	held(t, b)
	slept := sleeping(t, b)
	next(t, w).Release()
	<-slept
	w.Close()
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		leaked := strings.Contains(stacks, "sysevents.(*Watcher)") || strings.Contains(stacks, "sysevents.(*session)")
		if !leaked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Close:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
