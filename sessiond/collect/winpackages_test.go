package collect

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

const (
	uninstall64Root = `HKEY_LOCAL_MACHINE\` + uninstallKey
	uninstall32Root = `HKEY_LOCAL_MACHINE\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall`
)

func TestWindowsPackagesFromExports(t *testing.T) {
	entries := loadRegFile(t, "uninstall-64.reg").subkeyEntries(uninstall64Root)
	entries32 := loadRegFile(t, "uninstall-32.reg").subkeyEntries(uninstall32Root)
	if len(entries) < 20 || len(entries32) < 15 {
		t.Fatalf("read %d and %d entries from the exports", len(entries), len(entries32))
	}
	got, total := windowsPackages(append(entries, entries32...))
	want := []wire.Package{
		{Name: "7-Zip 23.01 (x64)", Version: "23.01"},
		{Name: "Git", Version: "2.43.0"},
		{Name: "Google Chrome", Version: "120.0.6099.217"},
		{Name: "Microsoft 365 Apps for enterprise - en-us", Version: "16.0.17126.20132"},
		{Name: "Microsoft Edge", Version: "120.0.2210.133"},
		{Name: "Microsoft Edge WebView2 Runtime", Version: "120.0.2210.133"},
		{Name: "Microsoft Office Professional Plus 2016", Version: "16.0.4266.1001"},
		{Name: "Microsoft Update Health Tools", Version: "5.72.0.0"},
		{Name: "Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.38.33130", Version: "14.38.33130.0"},
		{Name: "Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.38.33130", Version: "14.38.33130.0"},
		{Name: "Mozilla Firefox (x64 en-US)", Version: "121.0.1"},
		{Name: "Notepad++ (64-bit x64)", Version: "8.6.2"},
		{Name: "PowerShell 7-x64", Version: "7.4.1.0"},
		{Name: "Python 3.12.1 (64-bit)", Version: "3.12.1150.0"}, // SystemComponent=0 is shown
		{Name: "Teams Machine-Wide Installer", Version: "1.5.0.30767"},
		{Name: "Windows Driver Package - Intel Corporation (iaStorAC) HDC  (06/13/2023 19.5.2.1049)", Version: "06/13/2023 19.5.2.1049"},
	}
	if !slices.Equal(got, want) || total != len(want) {
		t.Errorf("got %d (total %d):\n%s\nwant:\n%s", len(got), total, listPackages(got), listPackages(want))
	}
}

func listPackages(ps []wire.Package) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\t%q %q\n", p.Name, p.Version)
	}
	return b.String()
}

func TestWindowsPackagesFilters(t *testing.T) {
	entry := func(kv ...string) uninstallEntry {
		e := uninstallEntry{Values: map[string]string{}}
		for i := 0; i+1 < len(kv); i += 2 {
			e.Values[kv[i]] = kv[i+1]
		}
		return e
	}
	got, total := windowsPackages([]uninstallEntry{
		entry("DisplayName", "Zoom Workplace (64-bit)", "DisplayVersion", "5.17.5 (31030)"),
		entry("DisplayName", "Zoom Workplace (64-bit)", "DisplayVersion", "5.17.5 (31030)"), // both views
		entry("DisplayName", "Zoom Workplace (64-bit)", "DisplayVersion", "5.16.0"),         // kept: another version
		entry("DisplayName", "   "),
		entry("DisplayVersion", "1.0"),
		entry("DisplayName", "Hidden", "SystemComponent", "1"),
		entry("DisplayName", "Shown", "SystemComponent", "0"),
		entry("DisplayName", "Patch", "ParentKeyName", "Office16.PROPLUS"),
		entry("DisplayName", "SP1", "ReleaseType", "Service Pack"),
		entry("DisplayName", "Rollup", "ReleaseType", "update rollup"),
		entry("DisplayName", "Product release", "ReleaseType", "Product"),
		entry("DisplayName", "\x1b[31mred\x1b[0m\r\nname\x00", "DisplayVersion", "1.0\xff"),
		entry("DisplayName", strings.Repeat("long ", 1<<18), "DisplayVersion", strings.Repeat("9", 1<<16)),
		entry("DisplayName", "apple"),
		entry("DisplayName", "Apple"),
	})
	var names []string
	for _, p := range got {
		names = append(names, p.Name+"="+p.Version)
		if len(p.Name) > maxPackageName || len(p.Version) > maxPackageVersion {
			t.Errorf("unbounded package %.40q… (%d, %d bytes)", p.Name, len(p.Name), len(p.Version))
		}
	}
	longName := cleanText(strings.Repeat("long ", 1<<18), maxPackageName)
	want := []string{"[31mred[0mname=1.0\uFFFD", "Apple=", "apple=",
		longName + "=" + cleanText(strings.Repeat("9", 1<<16), maxPackageVersion), "Product release=", "Shown=",
		"Zoom Workplace (64-bit)=5.16.0", "Zoom Workplace (64-bit)=5.17.5 (31030)"}
	if !slices.Equal(names, want) || total != len(want) {
		t.Errorf("got %q (total %d)\nwant %q", names, total, want)
	}
}

func TestWindowsPackagesHuge(t *testing.T) {
	const n = 100_000
	entries := make([]uninstallEntry, n)
	for i := range entries {
		entries[n-1-i] = uninstallEntry{Key: fmt.Sprint(i), Values: map[string]string{
			"DisplayName": fmt.Sprintf("App %06d", i), "DisplayVersion": "1.0"}}
	}
	got, total := windowsPackages(entries)
	if total != n || len(got) != maxWinPackages {
		t.Fatalf("%d packages of %d, want %d of %d", len(got), total, maxWinPackages, n)
	}
	if got[0].Name != "App 000000" || got[len(got)-1].Name != fmt.Sprintf("App %06d", maxWinPackages-1) {
		t.Errorf("kept %q … %q, want the first names in order", got[0].Name, got[len(got)-1].Name)
	}
}

// TestWindowsPackagesFitTheSnapshot fills the list with the worst names
// there are, every character one JSON writes as six bytes, and checks
// that the broker would still take the snapshot.
func TestWindowsPackagesFitTheSnapshot(t *testing.T) {
	entries := make([]uninstallEntry, 5000)
	for i := range entries {
		entries[i].Values = map[string]string{
			"DisplayName":    fmt.Sprintf("%05d", i) + strings.Repeat("<", 1000),
			"DisplayVersion": strings.Repeat("\u2028", 100),
		}
	}
	pkgs, total := windowsPackages(entries)
	if total != 5000 || len(pkgs) == 0 || len(pkgs) >= maxWinPackages {
		t.Fatalf("%d of %d packages kept", len(pkgs), total)
	}
	s := wire.Snapshot{Hostname: "h", OS: wire.OS{Family: "windows"}, AgentVersion: "v", Packages: pkgs}
	assertFitsSnapshot(t, &s, maxPackagesJSON)
}

// assertFitsSnapshot checks that s encodes within budget plus a little
// for the rest of the snapshot, and below wire.MaxSnapshot.
func assertFitsSnapshot(t *testing.T, s *wire.Snapshot, budget int) {
	t.Helper()
	b, err := wire.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > budget+1024 || len(b) > wire.MaxSnapshot {
		t.Errorf("snapshot of %d bytes, budget %d, limit %d", len(b), budget, wire.MaxSnapshot)
	}
	t.Logf("snapshot of %d bytes, budget %d", len(b), budget)
}
