package sysevents

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// logind's manager object and the standard properties interface.
const (
	login1Path    = dbus.ObjectPath("/org/freedesktop/login1")
	login1Manager = "org.freedesktop.login1.Manager"
	propsIface    = "org.freedesktop.DBus.Properties"
)

// What the inhibitor says to whoever lists them (systemd-inhibit --list).
const (
	inhibitWhat = "sleep:shutdown"
	inhibitWho  = "readymesh sessiond"
	inhibitWhy  = "telling the broker before the machine goes"
)

// takeLock takes a delay inhibitor for sleep and shutdown, unless one is
// held already. logind answers with the write end of a FIFO: while it is
// open, logind waits (up to its InhibitDelayMaxSec) after announcing a
// sleep or shutdown; closing it lets the system go on.
func (s *session) takeLock(ctx context.Context) {
	if s.lock != nil || s.logind == "" {
		return
	}
	if !s.conn.SupportsUnixFDs() {
		s.warnInhibit("the bus connection cannot pass file descriptors", nil)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var fd dbus.UnixFD
	err := s.conn.Object(login1Name, login1Path).CallWithContext(ctx, login1Manager+".Inhibit", 0,
		inhibitWhat, inhibitWho, inhibitWhy, "delay").Store(&fd)
	if err != nil {
		s.warnInhibit("logind refused an inhibitor", err)
		return
	}
	s.lock = os.NewFile(uintptr(fd), "logind delay inhibitor")
	s.w.log.Debug("sysevents: holding a delay inhibitor for sleep and shutdown")
}

// warnInhibit logs, once per logind, that no delay can be taken: the
// events still come, but the machine may be gone before the agent speaks.
func (s *session) warnInhibit(why string, err error) {
	if s.inhibitWarned {
		return
	}
	s.inhibitWarned = true
	s.w.log.Warn("sysevents: cannot delay sleep and shutdown: "+why+"; the agent's leaving notice may not get out", "err", err)
}

// closeLock drops the idle inhibitor.
func (s *session) closeLock() {
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

// handOver moves the idle inhibitor into a new hold for an event, which
// Release or MaxDelay closes. An older hold still open goes first: the
// system has moved past it.
func (s *session) handOver(kind Kind) *hold {
	s.hold.release()
	s.hold = nil
	if s.lock == nil {
		return nil
	}
	s.hold = newHold(s.lock, s.w.cfg.maxDelay(), s.w.log, kind)
	s.lock = nil
	return s.hold
}

// prepareForSleep delivers Sleep (start) or Resume (!start); after a
// resume it takes a new inhibitor for the next time.
func (s *session) prepareForSleep(ctx context.Context, start bool) {
	now := time.Now()
	if !start {
		s.hold.release()
		s.hold = nil
		s.takeLock(ctx)
		s.w.log.Info("sysevents: the machine resumed")
		s.w.deliver(ctx, Event{Kind: Resume, At: now})
		return
	}
	e := Event{Kind: Sleep, At: now}
	if s.lidClosed(ctx) {
		e.Detail = "lid closed"
	}
	e.hold = s.handOver(Sleep)
	s.w.log.Info("sysevents: the machine is about to sleep", "detail", e.Detail, "held", e.hold != nil)
	s.w.deliver(ctx, e)
}

// prepareForShutdown delivers Shutdown (start) or, for a cancelled
// shutdown, Resume with a new inhibitor. logind since systemd 255 sends
// PrepareForShutdownWithMetadata, whose metadata names the kind of
// shutdown, just before the plain PrepareForShutdown; the plain one is
// then the same shutdown. Without it, the ScheduledShutdown property may
// still say (for a shutdown scheduled ahead, as `shutdown -r +5` does).
func (s *session) prepareForShutdown(ctx context.Context, start bool, md map[string]dbus.Variant, withMetadata bool) {
	now := time.Now()
	if !start {
		if withMetadata {
			return // the plain signal follows
		}
		s.metadataSeen = false
		s.hold.release()
		s.hold = nil
		s.takeLock(ctx)
		s.w.log.Info("sysevents: the shutdown was cancelled")
		s.w.deliver(ctx, Event{Kind: Resume, At: now, Detail: "shutdown cancelled"})
		return
	}
	if !withMetadata && s.metadataSeen {
		s.metadataSeen = false
		return
	}
	var kind string
	if withMetadata {
		s.metadataSeen = true
		if v, ok := md["type"]; ok {
			kind, _ = v.Value().(string)
		}
	} else {
		kind = s.scheduledShutdown(ctx)
	}
	e := Event{Kind: Shutdown, At: now}
	e.Detail, e.Reboot = shutdownKind(kind)
	e.hold = s.handOver(Shutdown)
	s.w.log.Info("sysevents: the machine is about to shut down", "detail", e.Detail, "held", e.hold != nil)
	s.w.deliver(ctx, e)
}

// shutdownKind turns logind's name for a shutdown (its handle-action
// names; older ScheduledShutdown values carry a "dry-" prefix) into
// Event.Detail and Reboot. Unknown or empty names say nothing.
func shutdownKind(name string) (detail string, reboot bool) {
	switch strings.TrimPrefix(name, "dry-") {
	case "reboot", "kexec", "soft-reboot":
		return "reboot", true
	case "poweroff":
		return "power-off", false
	case "halt":
		return "halt", false
	}
	return "", false
}

// lidClosed reads logind's LidClosed; false when it cannot be read.
func (s *session) lidClosed(ctx context.Context) bool {
	v, err := s.managerProperty(ctx, "LidClosed")
	if err != nil {
		s.w.log.Debug("sysevents: cannot read LidClosed", "err", err)
		return false
	}
	closed, _ := v.Value().(bool)
	return closed
}

// scheduledShutdown reads the kind of the shutdown logind has scheduled;
// empty when none or unreadable.
func (s *session) scheduledShutdown(ctx context.Context) string {
	v, err := s.managerProperty(ctx, "ScheduledShutdown")
	if err != nil {
		s.w.log.Debug("sysevents: cannot read ScheduledShutdown", "err", err)
		return ""
	}
	var sched struct {
		Kind string
		Usec uint64
	}
	if err := v.Store(&sched); err != nil {
		s.w.log.Debug("sysevents: ScheduledShutdown is not (st)", "value", v.String())
		return ""
	}
	return sched.Kind
}

// managerProperty reads one property of logind's manager.
func (s *session) managerProperty(ctx context.Context, name string) (dbus.Variant, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var v dbus.Variant
	err := s.conn.Object(login1Name, login1Path).CallWithContext(ctx, propsIface+".Get", 0, login1Manager, name).Store(&v)
	return v, err
}
