package collect

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// currentVersionKey is where Windows describes itself, below
// HKEY_LOCAL_MACHINE.
const currentVersionKey = `SOFTWARE\Microsoft\Windows NT\CurrentVersion`

// currentVersionValues are the values of currentVersionKey that windowsOS
// reads. Integer values (UBR and the version numbers are REG_DWORD) are
// given to it in decimal.
var currentVersionValues = []string{
	"ProductName", "EditionID", "DisplayVersion", "ReleaseId",
	"CurrentBuildNumber", "CurrentBuild", "UBR",
	"CurrentMajorVersionNumber", "CurrentMinorVersionNumber", "CurrentVersion",
}

// Bounds on the OS fields, in bytes. Real values are a fraction of these.
const (
	maxOSName    = 128
	maxOSEdition = 64
	maxOSRelease = 32
)

// firstWindows11Build is the first build of Windows 11. Its ProductName
// still says "Windows 10": Microsoft kept the value for compatibility.
const firstWindows11Build = 22000

// windowsOS maps the values of the CurrentVersion key (name → value, as
// currentVersionValues says) to the snapshot's OS:
//
//	ProductName               → Name ("Windows 10" made "Windows 11" from build 22000)
//	EditionID                 → Edition
//	DisplayVersion, ReleaseId → DisplayVersion (ReleaseId before 20H2 and on Server 2019)
//	CurrentBuildNumber, UBR   → Build "22631.3007"
//	CurrentMajorVersionNumber, CurrentMinorVersionNumber (or CurrentVersion),
//	CurrentBuildNumber        → Version "10.0.22631"
//
// Family and ID are "windows". Missing optional values (edition, display
// version, UBR: older releases lack them) leave their fields empty; a
// missing or unreadable product name or build number is an error naming
// the value, and the fields it feeds are left empty or generic. Kernel and
// Arch are not in the registry: the collector sets them.
func windowsOS(v map[string]string) (wire.OS, error) {
	o := wire.OS{Family: "windows", ID: "windows"}
	var errs []error
	o.Name = cleanText(v["ProductName"], maxOSName)
	if o.Name == "" {
		o.Name = "Windows"
		errs = append(errs, errors.New("ProductName is missing"))
	}
	o.Edition = cleanText(v["EditionID"], maxOSEdition)
	o.DisplayVersion = cleanText(cmpOr(v["DisplayVersion"], v["ReleaseId"]), maxOSRelease)
	build, err := windowsBuild(v)
	if err != nil {
		errs = append(errs, err)
		return o, fmt.Errorf("os: %w", errors.Join(errs...))
	}
	if build >= firstWindows11Build {
		o.Name = windows11Name(o.Name)
	}
	o.Build = strconv.FormatUint(build, 10)
	if ubr, ok, err := decimalValue(v, "UBR"); err != nil {
		errs = append(errs, err)
	} else if ok {
		o.Build += "." + strconv.FormatUint(ubr, 10)
	}
	if mm := majorMinor(v); mm != "" {
		o.Version = mm + "." + strconv.FormatUint(build, 10)
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("os: %w", errors.Join(errs...))
	}
	return o, nil
}

// windowsBuild reads CurrentBuildNumber, or CurrentBuild when it is
// missing.
func windowsBuild(v map[string]string) (uint64, error) {
	name := "CurrentBuildNumber"
	if v[name] == "" {
		name = "CurrentBuild"
	}
	b, ok, err := decimalValue(v, name)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, errors.New("CurrentBuildNumber is missing")
	}
	return b, nil
}

// maxWindowsNumber bounds the build and version numbers accepted: they are
// 16-bit on Windows (a build is below 65536), with room to spare.
const maxWindowsNumber = 1<<32 - 1

// decimalValue parses the named value as a decimal number. ok is false
// when the value is absent or empty; a value that is not a number, or a
// number larger than maxWindowsNumber, is an error quoting it.
func decimalValue(v map[string]string, name string) (n uint64, ok bool, err error) {
	s := strings.TrimSpace(v[name])
	if s == "" {
		return 0, false, nil
	}
	n, err = strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxWindowsNumber {
		return 0, false, fmt.Errorf("%s is not a build number: %q", name, cleanText(s, 32))
	}
	return n, true, nil
}

// majorMinor returns "10.0" from CurrentMajorVersionNumber and
// CurrentMinorVersionNumber, which Windows 10 and later have, or else
// CurrentVersion ("6.3" on Windows 8.1; Windows 10 keeps "6.3" there too,
// for compatibility, which is why it comes second). It is empty when
// neither reads as a version.
func majorMinor(v map[string]string) string {
	major, okMajor, err1 := decimalValue(v, "CurrentMajorVersionNumber")
	minor, okMinor, err2 := decimalValue(v, "CurrentMinorVersionNumber")
	if okMajor && okMinor && err1 == nil && err2 == nil {
		return fmt.Sprintf("%d.%d", major, minor)
	}
	cv := strings.TrimSpace(v["CurrentVersion"])
	a, b, ok := strings.Cut(cv, ".")
	if !ok || !allDigits(a) || !allDigits(b) || len(cv) > 11 {
		return ""
	}
	return cv
}

// allDigits reports whether s is a non-empty run of ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// windows11Name corrects a Windows 11 ProductName, which still reads
// "Windows 10 Pro": the first "Windows 10" standing as a word becomes
// "Windows 11". Server names ("Windows Server 2022 Datacenter") do not
// contain it and are kept.
func windows11Name(name string) string {
	const old = "Windows 10"
	i := strings.Index(name, old)
	if i < 0 {
		return name
	}
	rest := name[i+len(old):]
	if rest != "" && rest[0] != ' ' {
		return name // "Windows 100…" is not Windows 10
	}
	return name[:i] + "Windows 11" + rest
}

// kernelVersion formats the version the NT kernel reports for itself
// (RtlGetVersion): "10.0.22631". Unlike the registry it cannot be edited,
// and unlike GetVersionEx it is not shimmed for compatibility.
func kernelVersion(major, minor, build uint32) string {
	return fmt.Sprintf("%d.%d.%d", major, minor, build)
}

// Machine types from IsWow64Process2 (IMAGE_FILE_MACHINE_*).
const (
	imageFileMachineI386  = 0x014c
	imageFileMachineARMNT = 0x01c4
	imageFileMachineAMD64 = 0x8664
	imageFileMachineARM64 = 0xaa64
)

// machineArch names a machine type as GOARCH does, or "" for one it does
// not know. The native machine is what the snapshot reports, because an
// amd64 agent emulated on an arm64 machine runs on arm64.
func machineArch(machine uint16) string {
	switch machine {
	case imageFileMachineI386:
		return "386"
	case imageFileMachineARMNT:
		return "arm"
	case imageFileMachineAMD64:
		return "amd64"
	case imageFileMachineARM64:
		return "arm64"
	}
	return ""
}
