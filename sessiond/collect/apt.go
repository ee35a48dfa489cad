package collect

import (
	"context"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// aptArgs simulate a full upgrade. dist-upgrade rather than upgrade: it
// also lists the new packages an update pulls in, such as the next kernel
// ABI package that carries a security fix. -s never changes the system and
// never fetches; NoLocking lets it run while apt or unattended-upgrades
// holds the lock.
var aptArgs = []string{"-s", "-o", "Debug::NoLocking=1", "dist-upgrade"}

// aptUpdates runs apt-get's simulated upgrade and parses it.
func (m machine) aptUpdates(ctx context.Context, aptGet string) ([]wire.PendingUpdate, error) {
	out, err := m.output(ctx, aptGet, aptArgs...)
	if err != nil {
		return nil, err
	}
	return parseAptSim(string(out)), nil
}

// parseAptSim parses the "Inst" lines of a simulated upgrade:
//
//	Inst NAME [OLD] (NEW ORIGIN[, ORIGIN...] [ARCH]) [...]
//
// [OLD] is missing for a package newly installed by the upgrade. An update
// is marked Security when one of its origins mentions security, as
// Debian-Security:12/stable-security and Ubuntu:22.04/jammy-security do.
// Lines it cannot read are skipped.
func parseAptSim(out string) []wire.PendingUpdate {
	var ups []wire.PendingUpdate
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(line, "Inst ")
		if !ok {
			continue
		}
		if u, ok := parseAptInst(strings.TrimSpace(rest)); ok {
			ups = append(ups, u)
		}
	}
	return ups
}

// parseAptInst parses what follows "Inst ".
func parseAptInst(rest string) (wire.PendingUpdate, bool) {
	name, rest, _ := strings.Cut(rest, " ")
	if name == "" || strings.ContainsAny(name, "[]()") {
		return wire.PendingUpdate{}, false
	}
	u := wire.PendingUpdate{ID: name, Source: "apt"}
	_, group, ok := strings.Cut(rest, "(")
	if !ok {
		return u, true
	}
	group, _, _ = strings.Cut(group, ")")
	version, origins, _ := strings.Cut(strings.TrimSpace(group), " ")
	u.Version = version
	u.Security = strings.Contains(strings.ToLower(origins), "security")
	return u, true
}
