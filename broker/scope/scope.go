// Package scope answers what a technician may see. A technician's record
// lists its clients (or "*"); an admin sees every client. Everything a
// technician names, a machine, a job, an audit entry or a transcript, is
// looked up among what its scope allows, so a machine outside it is "not
// found", never "forbidden": its existence does not leak.
package scope

import (
	"slices"
	"strings"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Everyone is the scope of views computed once for every technician and
// filtered per technician afterwards (the console's shared fleet view).
var Everyone = wire.Technician{Name: "console-view", Admin: true}

// Visible reports whether technician t may see client's machines.
func Visible(t *wire.Technician, client string) bool {
	if t.Admin {
		return true
	}
	for _, c := range t.Clients {
		if c == "*" || c == client {
			return true
		}
	}
	return false
}

// Clients returns the clients among cs that t may see; it reuses cs.
func Clients(t *wire.Technician, cs []wire.Client) []wire.Client {
	return slices.DeleteFunc(cs, func(c wire.Client) bool { return !Visible(t, c.Name) })
}

// AuditVisible reports whether t may see audit entry e: an admin sees
// all, others the entries of machines in their clients.
func AuditVisible(t *wire.Technician, e *wire.AuditEntry) bool {
	client, _, ok := strings.Cut(e.Machine, "/")
	return t.Admin || (ok && Visible(t, client))
}

// Machines is what Find reads: every stored machine.
type Machines interface {
	Machines() []store.Machine
}

// Find resolves a machine ID, name or client/name among the machines t
// may see.
func Find(st Machines, t *wire.Technician, name string) (store.Machine, *wire.Error) {
	var found []store.Machine
	for _, m := range st.Machines() {
		if !Visible(t, m.Client) {
			continue
		}
		if m.ID == name || m.Name == name || m.Client+"/"+m.Name == name {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		return store.Machine{}, wire.Errorf(wire.CodeNotFound, "no machine %q among the machines you can see", name)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, m := range found {
		names[i] = m.Client + "/" + m.Name
	}
	return store.Machine{}, wire.Errorf(wire.CodeConflict, "%q is ambiguous: %s", name, strings.Join(names, ", "))
}
