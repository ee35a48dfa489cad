package systemdtest

import (
	"fmt"
	"strings"
)

// Fake is systemctl as a systemd.Manager uses it, without systemd: it
// records each call and keeps which units systemd would know and in
// which state each is.
type Fake struct {
	// Calls are the calls so far, each one's arguments joined by blanks.
	// A test may append its own steps (useradd …) to see one order.
	Calls []string
	// Fail is a call (its arguments joined by blanks) that fails.
	Fail string
	// StartsAs is the state a unit is in once started: "" means active;
	// "activating" is one that died and waits to be restarted.
	StartsAs string

	known map[string]bool   // units systemd has loaded
	state map[string]string // is-active's answer per unit
}

// Know makes systemd know a unit called name, as if a package had
// installed it.
func (f *Fake) Know(name string) {
	if f.known == nil {
		f.known, f.state = map[string]bool{}, map[string]string{}
	}
	f.known[name] = true
}

// Run is the systemd.Systemctl.
func (f *Fake) Run(args ...string) (string, error) {
	call := strings.Join(args, " ")
	f.Calls = append(f.Calls, call)
	if call == f.Fail {
		return "", fmt.Errorf("systemctl %s: exit status 1: Job for the unit failed", call)
	}
	f.Know("") // makes the maps
	name := args[len(args)-1]
	switch args[0] {
	case "show":
		if f.known[name] {
			return "loaded\n", nil
		}
		return "not-found\n", nil
	case "enable":
		f.known[name] = true
		f.state[name] = "active"
		if f.StartsAs != "" {
			f.state[name] = f.StartsAs
		}
	case "is-active":
		st := f.state[name]
		if st == "" {
			st = "inactive"
		}
		if st != "active" {
			return st + "\n", fmt.Errorf("systemctl is-active %s: exit status 3", name)
		}
		return st + "\n", nil
	case "disable":
		// Remove disables a unit, then deletes its file and reloads:
		// systemd forgets it then.
		f.state[name] = "inactive"
		delete(f.known, name)
	case "reset-failed":
		if !f.known[name] {
			return "", fmt.Errorf("systemctl reset-failed %s: exit status 1: Unit %s not loaded.", name, name)
		}
	}
	return "", nil
}
