package collect

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// macSwVersPath is sw_vers, which prints the product name, version and
// build of the running macOS.
const macSwVersPath = "/usr/bin/sw_vers"

// macSwVersMax bounds sw_vers' output, four short lines on a real Mac.
const macSwVersMax = 64 << 10

// macSwVersTimeout bounds sw_vers, which reads one property list and
// answers at once.
const macSwVersTimeout = 10 * time.Second

// macFieldMax bounds one field read from sw_vers; a longer one is not
// sw_vers speaking.
const macFieldMax = 256

// swVers is what sw_vers reports.
type swVers struct {
	Name    string // ProductName: "macOS", "Mac OS X" before 10.12
	Version string // ProductVersion: "14.2.1"
	Extra   string // ProductVersionExtra: "(a)" once a security supplement is applied
	Build   string // BuildVersion: "23C71"
}

// collectMacOS fills s.OS from sw_vers and the kernel. Family and Arch are
// always set; the kernel release and sw_vers are read independently, so
// one failing loses only its own fields.
func (m macMachine) collectMacOS(ctx context.Context, s *wire.Snapshot) error {
	s.OS.Family = "darwin"
	s.OS.Arch = m.kernel.arch()
	var errs []error
	kernel, err := m.kernel.release()
	if err != nil {
		errs = append(errs, fmt.Errorf("kernel release: %w", err))
	}
	s.OS.Kernel = kernel
	v, err := m.swVers(ctx)
	if err != nil {
		errs = append(errs, err)
	} else {
		fillMacOS(&s.OS, v)
	}
	return errors.Join(errs...)
}

func (m macMachine) swVers(ctx context.Context) (swVers, error) {
	path, err := m.macTool(macSwVersPath)
	if err != nil {
		return swVers{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, macSwVersTimeout)
	defer cancel()
	out, _, err := m.macOutput(ctx, macSwVersMax, path)
	if err != nil {
		return swVers{}, err
	}
	v, err := parseSwVers(out)
	if err != nil {
		return swVers{}, fmt.Errorf("sw_vers: %w", err)
	}
	return v, nil
}

// parseSwVers parses sw_vers' "Key:<tabs>Value" lines. Unknown keys
// (ReleaseType on betas), lines without a colon and values longer than
// macFieldMax are skipped. It fails when no ProductVersion made of numbers
// and dots is found, because then nothing identifies the release.
func parseSwVers(text string) (swVers, error) {
	var v swVers
	fields := map[string]*string{
		"ProductName":         &v.Name,
		"ProductVersion":      &v.Version,
		"ProductVersionExtra": &v.Extra,
		"BuildVersion":        &v.Build,
	}
	for line := range strings.Lines(text) {
		key, val, ok := strings.Cut(line, ":")
		dst := fields[strings.TrimSpace(key)]
		val = strings.TrimSpace(val)
		if !ok || dst == nil || len(val) > macFieldMax || hasControl(val) {
			continue
		}
		*dst = val
	}
	if v.Version == "" {
		return swVers{}, errors.New("no ProductVersion")
	}
	if _, ok := macMajorMinor(v.Version); !ok {
		return swVers{}, fmt.Errorf("ProductVersion %q is not a version", macClip(v.Version))
	}
	return v, nil
}

// fillMacOS sets the release fields of o from v. Name carries the
// supplement letter ("macOS 13.4.1 (c)") as About This Mac shows it;
// Version stays the plain ProductVersion so versions compare, and Build
// tells a supplemented system apart.
func fillMacOS(o *wire.OS, v swVers) {
	o.ID = "macos"
	o.Name = strings.Join(nonEmpty(cmpOr(v.Name, "macOS"), v.Version, v.Extra), " ")
	o.Version = v.Version
	o.Build = v.Build
	o.DisplayVersion = macReleaseName(v.Version)
}

// nonEmpty returns the non-empty strings among vals.
func nonEmpty(vals ...string) []string {
	var out []string
	for _, v := range vals {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// macNames are the marketing names of macOS by major version; 10 is
// looked up by its minor version in macTenNames. 16 to 25 were skipped:
// Tahoe, after Sequoia (15), is 26.
var macNames = map[int]string{
	11: "Big Sur", 12: "Monterey", 13: "Ventura", 14: "Sonoma", 15: "Sequoia", 26: "Tahoe",
}

// macTenNames names the 10.x releases. 10.16 is what Big Sur reports to
// programs that ask for the old numbering (SYSTEM_VERSION_COMPAT).
var macTenNames = map[int]string{
	9: "Mavericks", 10: "Yosemite", 11: "El Capitan", 12: "Sierra", 13: "High Sierra",
	14: "Mojave", 15: "Catalina", 16: "Big Sur",
}

// macReleaseName returns the marketing name of a macOS version ("14.2.1"
// is "Sonoma"), or "" for a version it does not know.
func macReleaseName(version string) string {
	mm, ok := macMajorMinor(version)
	if !ok {
		return ""
	}
	if mm[0] == 10 {
		return macTenNames[mm[1]]
	}
	return macNames[mm[0]]
}

// macMajorMinor reads the first two numbers of a dotted version; a
// missing minor is 0. It fails on anything but digits and dots.
func macMajorMinor(version string) ([2]int, bool) {
	var mm [2]int
	parts := strings.Split(version, ".")
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p[0] == '+' || p[0] == '-' {
			return mm, false
		}
		if i < len(mm) {
			mm[i] = n
		}
	}
	return mm, true
}

// hasControl reports whether s holds a control character, which no field
// of these tools' output has.
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
