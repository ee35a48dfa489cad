package collect

import (
	"strings"
	"testing"

	"github.com/readymesh/readymesh/peer/wire"
)

// currentVersion returns the values of the CurrentVersion key in an export
// in testdata/windows, those the os collector reads.
func currentVersion(t *testing.T, file string) map[string]string {
	t.Helper()
	rf := loadRegFile(t, file)
	all, ok := rf.values[`HKEY_LOCAL_MACHINE\`+currentVersionKey]
	if !ok {
		t.Fatalf("%s has no CurrentVersion key", file)
	}
	vals := map[string]string{}
	for _, name := range currentVersionValues {
		if v, ok := all[name]; ok {
			vals[name] = v
		}
	}
	return vals
}

func TestWindowsOSFromExports(t *testing.T) {
	for _, tc := range []struct {
		file string
		want wire.OS
	}{
		{"currentversion-win10-22h2.reg", wire.OS{Name: "Windows 10 Pro", Edition: "Professional",
			DisplayVersion: "22H2", Build: "19045.3930", Version: "10.0.19045"}},
		// ProductName says "Windows 10 Pro"; build 22631 is Windows 11.
		{"currentversion-win11-23h2.reg", wire.OS{Name: "Windows 11 Pro", Edition: "Professional",
			DisplayVersion: "23H2", Build: "22631.3007", Version: "10.0.22631"}},
		{"currentversion-server2022.reg", wire.OS{Name: "Windows Server 2022 Datacenter", Edition: "ServerDatacenter",
			DisplayVersion: "21H2", Build: "20348.2227", Version: "10.0.20348"}},
		// No DisplayVersion before 20H2: ReleaseId stands in.
		{"currentversion-server2019.reg", wire.OS{Name: "Windows Server 2019 Standard", Edition: "ServerStandard",
			DisplayVersion: "1809", Build: "17763.5329", Version: "10.0.17763"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := windowsOS(currentVersion(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Family, tc.want.ID = "windows", "windows"
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestWindowsOSMissingAndGarbage(t *testing.T) {
	base := map[string]string{
		"ProductName": "Windows 10 Enterprise", "EditionID": "Enterprise", "DisplayVersion": "22H2",
		"CurrentBuildNumber": "19045", "UBR": "3930", "CurrentMajorVersionNumber": "10", "CurrentMinorVersionNumber": "0",
	}
	with := func(changes map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range changes {
			if v == "<delete>" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		vals    map[string]string
		errWith string // "" for no error
		check   func(wire.OS) bool
	}{
		{"no UBR (before Windows 10)", with(map[string]string{"UBR": "<delete>"}), "",
			func(o wire.OS) bool { return o.Build == "19045" && o.Version == "10.0.19045" }},
		{"CurrentBuild when CurrentBuildNumber is missing", with(map[string]string{"CurrentBuildNumber": "<delete>", "CurrentBuild": "19045"}), "",
			func(o wire.OS) bool { return o.Build == "19045.3930" }},
		{"Windows 8.1: CurrentVersion", with(map[string]string{"CurrentMajorVersionNumber": "<delete>",
			"CurrentMinorVersionNumber": "<delete>", "CurrentVersion": "6.3", "CurrentBuildNumber": "9600", "UBR": "<delete>"}), "",
			func(o wire.OS) bool { return o.Version == "6.3.9600" && o.Build == "9600" }},
		{"no product name", with(map[string]string{"ProductName": "<delete>"}), "ProductName is missing",
			func(o wire.OS) bool { return o.Name == "Windows" && o.Build == "19045.3930" }},
		{"no build", with(map[string]string{"CurrentBuildNumber": "<delete>"}), "CurrentBuildNumber is missing",
			func(o wire.OS) bool { return o.Build == "" && o.Version == "" && o.Name == "Windows 10 Enterprise" }},
		{"garbage build", with(map[string]string{"CurrentBuildNumber": "19045\x00\x07rm -rf"}), "not a build number",
			func(o wire.OS) bool { return o.Build == "" && o.Version == "" }},
		{"huge build", with(map[string]string{"CurrentBuildNumber": "99999999999999999999"}), "not a build number",
			func(o wire.OS) bool { return o.Build == "" }},
		{"garbage UBR keeps the build", with(map[string]string{"UBR": "-1"}), "UBR is not a build number",
			func(o wire.OS) bool { return o.Build == "19045" && o.Version == "10.0.19045" }},
		{"garbage version numbers", with(map[string]string{"CurrentMajorVersionNumber": "ten", "CurrentVersion": "6.x"}), "",
			func(o wire.OS) bool { return o.Version == "" && o.Build == "19045.3930" }},
		{"control characters and a huge name", with(map[string]string{
			"ProductName": "Windows\x00 10\r\n Pro" + strings.Repeat("é", 10_000), "EditionID": strings.Repeat("x", 1<<20)}), "",
			func(o wire.OS) bool {
				return strings.HasPrefix(o.Name, "Windows 10 Pro") && len(o.Name) <= maxOSName &&
					strings.HasSuffix(o.Name, "…") && len(o.Edition) <= maxOSEdition
			}},
		{"invalid UTF-8", with(map[string]string{"DisplayVersion": "22\xffH2"}), "",
			func(o wire.OS) bool { return o.DisplayVersion == "22\uFFFDH2" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := windowsOS(tc.vals)
			switch {
			case tc.errWith == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.errWith != "" && (err == nil || !strings.Contains(err.Error(), tc.errWith)):
				t.Errorf("error %v, want one saying %q", err, tc.errWith)
			}
			if o.Family != "windows" || !tc.check(o) {
				t.Errorf("got %+v", o)
			}
		})
	}
	if o, err := windowsOS(nil); err == nil || o.Family != "windows" || o.Name != "Windows" {
		t.Errorf("no values: %+v, %v", o, err)
	}
}

func TestWindows11Name(t *testing.T) {
	for in, want := range map[string]string{
		"Windows 10 Pro":                 "Windows 11 Pro",
		"Windows 10 Home":                "Windows 11 Home",
		"Windows 10":                     "Windows 11",
		"Microsoft Windows 10":           "Microsoft Windows 11", // Wine's
		"Windows 10 Enterprise LTSC":     "Windows 11 Enterprise LTSC",
		"Windows Server 2022 Datacenter": "Windows Server 2022 Datacenter",
		"Windows 100 Pro":                "Windows 100 Pro",
	} {
		if got := windows11Name(in); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
	// Build 22000 is the first Windows 11; 21999 is still Windows 10.
	o, _ := windowsOS(map[string]string{"ProductName": "Windows 10 Pro", "CurrentBuildNumber": "22000"})
	o2, _ := windowsOS(map[string]string{"ProductName": "Windows 10 Pro", "CurrentBuildNumber": "21999"})
	if o.Name != "Windows 11 Pro" || o2.Name != "Windows 10 Pro" {
		t.Errorf("build 22000 %q, build 21999 %q", o.Name, o2.Name)
	}
}

func TestMachineArch(t *testing.T) {
	for m, want := range map[uint16]string{0x8664: "amd64", 0xaa64: "arm64", 0x014c: "386", 0x01c4: "arm", 0x0200: ""} {
		if got := machineArch(m); got != want {
			t.Errorf("%#x: %q, want %q", m, got, want)
		}
	}
	if kernelVersion(10, 0, 22631) != "10.0.22631" {
		t.Error(kernelVersion(10, 0, 22631))
	}
}

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"  plain  ", 10, "plain"},
		{"a\x00b\tc\nd", 10, "abcd"},
		{"bad\xff", 10, "bad\uFFFD"},
		{"abcdefghij", 10, "abcdefghij"},
		{"abcdefghijk", 10, "abcdefg…"},
		{"ééééé", 8, "éé…"}, // cut on a rune boundary
		{"abc", 2, ""},
	} {
		if got := cleanText(tc.in, tc.max); got != tc.want || len(got) > tc.max {
			t.Errorf("cleanText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
