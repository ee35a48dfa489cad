package collect

import (
	"cmp"
	"slices"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// uninstallKey lists installed software, below HKEY_LOCAL_MACHINE: one
// subkey per product, the list "Installed apps" (Programs and Features)
// shows. On 64-bit Windows it is read in both registry views, because
// 32-bit installers write to the 32-bit view (WOW6432Node).
const uninstallKey = `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall`

// uninstallValues are the values of each product's subkey that
// windowsPackages reads; integer values are given in decimal.
var uninstallValues = []string{"DisplayName", "DisplayVersion", "SystemComponent", "ParentKeyName", "ReleaseType"}

// Bounds on the packages collector. A machine has a few hundred entries;
// the bounds keep a registry flooded by a broken installer from making a
// snapshot the broker refuses (wire.MaxSnapshot, 1 MiB), along with
// maxPackagesJSON.
const (
	// maxWinPackages bounds the packages reported. Past it the first
	// ones in name order are kept and the collector says how many there
	// were.
	maxWinPackages = 2_000
	// maxPackageName and maxPackageVersion bound DisplayName and
	// DisplayVersion, in bytes.
	maxPackageName    = 256
	maxPackageVersion = 64
)

// uninstallEntry is one subkey of an Uninstall key: its name and the
// values among uninstallValues it has.
type uninstallEntry struct {
	Key    string
	Values map[string]string
}

// windowsPackages turns Uninstall entries (of both views, in any order)
// into the snapshot's packages, the way "Installed apps" would list them:
//
//   - entries without a DisplayName are skipped (AddressBook, IE40 and
//     the other empty keys every Windows has);
//   - SystemComponent=1 entries are skipped: they are parts of another
//     product (the Visual C++ runtime MSIs inside its redistributable);
//   - entries with a ParentKeyName, or whose ReleaseType names an update,
//     hotfix or service pack, are skipped: they are patches to another
//     entry (Office's KB updates), and pending or installed updates are
//     the updates collector's business;
//   - names and versions are cleaned and bounded, equal name and version
//     pairs (one product in both views) are kept once, and the list is
//     sorted by name, case-insensitively, then version.
//
// At most maxWinPackages are returned, and no more than fit in
// maxPackagesJSON; total is how many there were.
func windowsPackages(entries []uninstallEntry) (pkgs []wire.Package, total int) {
	seen := make(map[wire.Package]bool)
	for _, e := range entries {
		p, ok := uninstallPackage(e.Values)
		if !ok || seen[p] {
			continue
		}
		seen[p] = true
		pkgs = append(pkgs, p)
	}
	slices.SortFunc(pkgs, comparePackages)
	total = len(pkgs)
	size := 0
	for i, p := range pkgs {
		size += jsonLen(p)
		if i == maxWinPackages || size > maxPackagesJSON {
			return slices.Clip(pkgs[:i]), total
		}
	}
	return pkgs, total
}

// uninstallPackage returns the package an entry describes, if it is one
// to report.
func uninstallPackage(v map[string]string) (wire.Package, bool) {
	name := cleanText(v["DisplayName"], maxPackageName)
	if name == "" || strings.TrimSpace(v["SystemComponent"]) == "1" {
		return wire.Package{}, false
	}
	if strings.TrimSpace(v["ParentKeyName"]) != "" || isUpdateRelease(v["ReleaseType"]) {
		return wire.Package{}, false
	}
	return wire.Package{Name: name, Version: cleanText(v["DisplayVersion"], maxPackageVersion)}, true
}

// isUpdateRelease reports whether a ReleaseType marks a patch: "Security
// Update", "Update", "Update Rollup", "Hotfix", "Service Pack".
func isUpdateRelease(t string) bool {
	t = strings.ToLower(t)
	for _, w := range []string{"update", "hotfix", "service pack"} {
		if strings.Contains(t, w) {
			return true
		}
	}
	return false
}

func comparePackages(a, b wire.Package) int {
	return cmp.Or(
		cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)),
		cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Version, b.Version),
	)
}
