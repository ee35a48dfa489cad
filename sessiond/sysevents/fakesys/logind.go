//go:build linux

package fakesys

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

// The fake logind's name, object and interface, as logind's.
const (
	login1Name    = "org.freedesktop.login1"
	login1Path    = dbus.ObjectPath("/org/freedesktop/login1")
	login1Manager = "org.freedesktop.login1.Manager"
)

// propSetter is the part of prop.Properties the fakes use.
type propSetter interface {
	SetMust(iface, property string, v any)
}

var _ propSetter = (*prop.Properties)(nil)

// manager is the fake logind's Manager object: Inhibit alone, which is
// all the agent calls; its properties are served by package prop.
type manager struct {
	b    *Bus
	conn *dbus.Conn
}

// Inhibit takes an inhibitor lock as logind does: it answers with the
// write end of a pipe and keeps the read end, and the lock lasts until
// every copy of the write end is closed.
//
// The answer is sent here rather than returned, because the fake's own
// copy of the write end may only be closed once it is on its way, and
// godbus sends a returned value after this method returns. godbus then
// sends an empty second answer, which the bus drops as a reply nobody
// asked for.
func (m *manager) Inhibit(msg dbus.Message, what, who, why, mode string) *dbus.Error {
	if mode != "block" && mode != "delay" {
		return dbus.NewError("org.freedesktop.DBus.Error.InvalidArgs", []any{"invalid mode " + mode})
	}
	r, w, err := os.Pipe()
	if err != nil {
		return dbus.MakeFailedError(err)
	}
	defer w.Close()
	in := &inhibitor{Inhibitor: Inhibitor{What: what, Who: who, Why: why, Mode: mode}, r: r}
	m.b.addInhibitor(in)
	sender, _ := msg.Headers[dbus.FieldSender].Value().(string)
	reply := &dbus.Message{
		Type: dbus.TypeMethodReply,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldDestination: dbus.MakeVariant(sender),
			dbus.FieldReplySerial: dbus.MakeVariant(msg.Serial()),
			dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(dbus.UnixFD(0))),
		},
		Body: []any{dbus.UnixFD(w.Fd())},
	}
	if call := m.conn.Send(reply, nil); call.Err != nil {
		r.Close() // the reader sees the end and drops the inhibitor
		return dbus.MakeFailedError(call.Err)
	}
	return nil
}

// addInhibitor records in and watches its pipe for the holder's close.
func (b *Bus) addInhibitor(in *inhibitor) {
	b.mu.Lock()
	b.inhibitors[in] = struct{}{}
	b.taken++
	b.changedLocked()
	b.mu.Unlock()
	b.readers.Add(1)
	go func() {
		defer b.readers.Done()
		io.Copy(io.Discard, in.r) // returns at end of file: every write end closed
		b.mu.Lock()
		delete(b.inhibitors, in)
		b.changedLocked()
		b.mu.Unlock()
		in.r.Close()
	}()
}

// changedLocked wakes whoever waits for the inhibitors to change.
func (b *Bus) changedLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// startLogindLocked puts the fake logind on the bus with the current
// state.
func (b *Bus) startLogindLocked() error {
	var props *prop.Properties
	conn, err := b.connectLocked(login1Name, func(conn *dbus.Conn) error {
		if err := conn.Export(&manager{b: b, conn: conn}, login1Path, login1Manager); err != nil {
			return err
		}
		var err error
		props, err = prop.Export(conn, login1Path, prop.Map{login1Manager: {
			"LidClosed":           {Value: b.lid, Emit: prop.EmitFalse},
			"ScheduledShutdown":   {Value: b.scheduled, Emit: prop.EmitFalse},
			"InhibitDelayMaxUSec": {Value: uint64(DelayMax / time.Microsecond), Emit: prop.EmitConst},
		}})
		return err
	})
	if err != nil {
		return err
	}
	b.logind, b.loginProps = conn, props
	return nil
}

// stopLogindLocked takes the fake logind off the bus.
func (b *Bus) stopLogindLocked() {
	if b.logind != nil {
		b.logind.Close()
		b.logind, b.loginProps = nil, nil
	}
}

// StopLogind takes logind off the bus (clients see its name lose its
// owner). The inhibitors it handed out stay held until closed.
func (b *Bus) StopLogind() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wantLogind = false
	b.stopLogindLocked()
}

// StartLogind puts logind back on the bus.
func (b *Bus) StartLogind() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wantLogind = true
	if b.logind == nil {
		if err := b.startLogindLocked(); err != nil {
			b.t.Errorf("fakesys: starting logind: %v", err)
		}
	}
}

// SetLid sets LidClosed.
func (b *Bus) SetLid(closed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lid = closed
	if b.loginProps != nil {
		b.loginProps.SetMust(login1Manager, "LidClosed", closed)
	}
}

// SetOldLogind makes Shutdown and CancelShutdown send only
// PrepareForShutdown, as logind before systemd 255 did, so the code under
// test must read ScheduledShutdown to know the kind of shutdown.
func (b *Bus) SetOldLogind(old bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.oldLogind = old
}

// emit sends a signal from logind's manager.
func (b *Bus) emit(member string, args ...any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.emitLocked(member, args...)
}

func (b *Bus) emitLocked(member string, args ...any) error {
	if b.logind == nil {
		return fmt.Errorf("fakesys: %s: logind is off the bus", member)
	}
	if err := b.logind.Emit(login1Path, login1Manager+"."+member, args...); err != nil {
		return fmt.Errorf("fakesys: emitting %s: %w", member, err)
	}
	if len(args) > 0 && args[0] == true {
		b.prepared = time.Now()
	}
	return nil
}

// emitAll sends signals in order, failing the test (not stopping it) at
// the first that cannot go out.
func (b *Bus) emitAll(signals ...[]any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, sig := range signals {
		if err := b.emitLocked(sig[0].(string), sig[1:]...); err != nil {
			b.t.Errorf("%v", err)
			return
		}
	}
}

// Sleep announces a sleep, PrepareForSleep(true), then waits as logind
// does until every delay inhibitor is released, and reports how long
// that took. It returns ErrDelayExpired if one is still held after
// DelayMax (logind would have slept anyway), or ctx's error.
func (b *Bus) Sleep(ctx context.Context) (time.Duration, error) {
	if err := b.emit("PrepareForSleep", true); err != nil {
		return 0, err
	}
	return b.WaitReleased(ctx)
}

// Wake announces the resume, PrepareForSleep(false).
func (b *Bus) Wake() { b.emitAll([]any{"PrepareForSleep", false}) }

// Shutdown announces a reboot or power-off as logind does:
// PrepareForShutdownWithMetadata(true, {"type": "reboot" or "poweroff"}),
// then PrepareForShutdown(true). With SetOldLogind only the second goes
// out, and the kind is known only from ScheduledShutdown (see
// ScheduleShutdown). It does not wait: WaitReleased does.
func (b *Bus) Shutdown(reboot bool) {
	kind := "poweroff"
	if reboot {
		kind = "reboot"
	}
	b.mu.Lock()
	old := b.oldLogind
	b.mu.Unlock()
	if old {
		b.emitAll([]any{"PrepareForShutdown", true})
		return
	}
	b.emitAll([]any{"PrepareForShutdownWithMetadata", true, map[string]dbus.Variant{"type": dbus.MakeVariant(kind)}},
		[]any{"PrepareForShutdown", true})
}

// CancelShutdown announces that the shutdown is off:
// PrepareForShutdown(false), after its metadata form unless SetOldLogind,
// and clears ScheduledShutdown.
func (b *Bus) CancelShutdown() {
	b.mu.Lock()
	old := b.oldLogind
	b.setScheduleLocked(schedule{})
	b.mu.Unlock()
	if old {
		b.emitAll([]any{"PrepareForShutdown", false})
		return
	}
	b.emitAll([]any{"PrepareForShutdownWithMetadata", false, map[string]dbus.Variant{}},
		[]any{"PrepareForShutdown", false})
}

// ScheduleShutdown sets ScheduledShutdown without announcing anything,
// as logind's ScheduleShutdown does ("poweroff", "reboot", "halt",
// "kexec"; empty for none).
func (b *Bus) ScheduleShutdown(kind string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := schedule{Kind: kind}
	if kind != "" {
		s.Usec = uint64(at.UnixMicro())
	}
	b.setScheduleLocked(s)
}

func (b *Bus) setScheduleLocked(s schedule) {
	b.scheduled = s
	if b.loginProps != nil {
		b.loginProps.SetMust(login1Manager, "ScheduledShutdown", s)
	}
}

// WaitReleased waits until no delay inhibitor is held, and reports how
// long after the last PrepareForSleep(true) or PrepareForShutdown(true)
// that was. It returns ErrDelayExpired once DelayMax has passed since
// then with one still held, or ctx's error.
func (b *Bus) WaitReleased(ctx context.Context) (time.Duration, error) {
	for {
		b.mu.Lock()
		held, changed, since := b.delayLocked(), b.changed, b.prepared
		b.mu.Unlock()
		waited := time.Since(since)
		if held == 0 {
			return waited, nil
		}
		if waited >= DelayMax {
			return waited, ErrDelayExpired
		}
		t := time.NewTimer(DelayMax - waited)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return time.Since(since), ctx.Err()
		}
		t.Stop()
	}
}

// Inhibitors is how many delay inhibitors are held now.
func (b *Bus) Inhibitors() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.delayLocked()
}

func (b *Bus) delayLocked() int {
	n := 0
	for in := range b.inhibitors {
		if in.Mode == "delay" {
			n++
		}
	}
	return n
}

// InhibitorList lists the inhibitors held now, of either mode.
func (b *Bus) InhibitorList() []Inhibitor {
	b.mu.Lock()
	defer b.mu.Unlock()
	var list []Inhibitor
	for in := range b.inhibitors {
		list = append(list, in.Inhibitor)
	}
	return list
}

// WaitInhibitors waits until exactly n delay inhibitors are held, or ctx
// ends.
func (b *Bus) WaitInhibitors(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		held, changed := b.delayLocked(), b.changed
		b.mu.Unlock()
		if held == n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return &waitError{want: n, held: held, err: ctx.Err()}
		}
	}
}

// Taken is how many inhibitors logind has handed out since Start, of
// either mode, released or not.
func (b *Bus) Taken() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.taken
}

// WaitTaken waits until logind has handed out at least n inhibitors
// since Start, or ctx ends.
func (b *Bus) WaitTaken(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		taken, changed := b.taken, b.changed
		b.mu.Unlock()
		if taken >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("fakesys: waiting for %d inhibitors handed out, %d so far: %w", n, taken, ctx.Err())
		}
	}
}

// waitError says how many inhibitors were held when WaitInhibitors gave
// up.
type waitError struct {
	want, held int
	err        error
}

func (e *waitError) Error() string {
	return fmt.Sprintf("fakesys: waiting for %d delay inhibitors, %d held: %v", e.want, e.held, e.err)
}

func (e *waitError) Unwrap() error { return e.err }
