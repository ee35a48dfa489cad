package sysevents

import (
	"context"
	"slices"

	"github.com/godbus/dbus/v5"
)

// NetworkManager's root object; its Metered property is the metered
// state of the connection that carries the default route.
const nmPath = dbus.ObjectPath("/org/freedesktop/NetworkManager")

// NetworkManager's NMMetered values.
const (
	nmMeteredUnknown  = 0
	nmMeteredYes      = 1
	nmMeteredNo       = 2
	nmMeteredGuessYes = 3
	nmMeteredGuessNo  = 4
)

// nmMetered turns an NMMetered value into the watcher's reading: yes and
// guess-yes are metered; no, guess-no and unknown are not.
func nmMetered(v uint32) (metered bool, detail string) {
	switch v {
	case nmMeteredYes:
		return true, "metered connection"
	case nmMeteredGuessYes:
		return true, "metered connection (guessed)"
	case nmMeteredNo:
		return false, "unmetered"
	case nmMeteredGuessNo:
		return false, "unmetered (guessed)"
	}
	return false, "unknown (taken as unmetered)"
}

// readMetered reads NetworkManager's Metered property and records it.
func (s *session) readMetered(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var v dbus.Variant
	err := s.conn.Object(nmName, nmPath).CallWithContext(cctx, propsIface+".Get", 0, nmName, "Metered").Store(&v)
	if err != nil {
		s.w.log.Warn("sysevents: cannot read NetworkManager's Metered property", "err", err)
		return
	}
	s.meteredValue(ctx, v)
}

// meteredValue records a Metered value read or announced.
func (s *session) meteredValue(ctx context.Context, v dbus.Variant) {
	n, ok := v.Value().(uint32)
	if !ok {
		s.w.log.Warn("sysevents: NetworkManager's Metered property is not a uint32", "value", v.String())
		return
	}
	metered, detail := nmMetered(n)
	s.w.setMetered(ctx, metered, detail)
}

// nmPropertiesChanged handles PropertiesChanged on NetworkManager's root
// object: a new Metered value, or word that it changed without one.
func (s *session) nmPropertiesChanged(ctx context.Context, sig *dbus.Signal) {
	var (
		iface       string
		changed     map[string]dbus.Variant
		invalidated []string
	)
	if err := dbus.Store(sig.Body, &iface, &changed, &invalidated); err != nil || iface != nmName {
		return
	}
	if v, ok := changed["Metered"]; ok {
		s.meteredValue(ctx, v)
	} else if slices.Contains(invalidated, "Metered") {
		s.readMetered(ctx)
	}
}
