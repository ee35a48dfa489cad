//go:build linux

package fakesys

import (
	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

// The fake NetworkManager's name and root object, as NetworkManager's.
const (
	nmName = "org.freedesktop.NetworkManager"
	nmPath = dbus.ObjectPath("/org/freedesktop/NetworkManager")
)

// NMMetered values the fake publishes.
const (
	nmMeteredYes = 1
	nmMeteredNo  = 2
)

// startNMLocked puts the fake NetworkManager on the bus with the current
// Metered value.
func (b *Bus) startNMLocked() error {
	var props *prop.Properties
	conn, err := b.connectLocked(nmName, func(conn *dbus.Conn) error {
		var err error
		props, err = prop.Export(conn, nmPath, prop.Map{nmName: {
			"Metered": {Value: b.metered, Emit: prop.EmitTrue},
		}})
		return err
	})
	if err != nil {
		return err
	}
	b.nm, b.nmProps = conn, props
	return nil
}

// stopNMLocked takes the fake NetworkManager off the bus.
func (b *Bus) stopNMLocked() {
	if b.nm != nil {
		b.nm.Close()
		b.nm, b.nmProps = nil, nil
	}
}

// StopNetworkManager takes NetworkManager off the bus.
func (b *Bus) StopNetworkManager() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wantNM = false
	b.stopNMLocked()
}

// StartNetworkManager puts NetworkManager back on the bus.
func (b *Bus) StartNetworkManager() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wantNM = true
	if b.nm == nil {
		if err := b.startNMLocked(); err != nil {
			b.t.Errorf("fakesys: starting NetworkManager: %v", err)
		}
	}
}

// SetMetered sets NetworkManager's Metered property to yes (1) or no (2);
// while NetworkManager is on the bus it announces the change with
// PropertiesChanged.
func (b *Bus) SetMetered(metered bool) {
	v := uint32(nmMeteredNo)
	if metered {
		v = nmMeteredYes
	}
	b.SetMeteredValue(v)
}

// SetMeteredValue sets Metered to any NMMetered value: 0 unknown, 1 yes,
// 2 no, 3 guessed yes, 4 guessed no.
func (b *Bus) SetMeteredValue(v uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.metered = v
	if b.nmProps != nil {
		b.nmProps.SetMust(nmName, "Metered", v)
	}
}
