package collect

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// dpkgFormat asks dpkg-query for name (with :arch for foreign
// architectures), version and the abbreviated status, tab separated.
const dpkgFormat = `${binary:Package}\t${Version}\t${db:Status-Abbrev}\n`

// rpmFormat asks rpm for name and [epoch:]version-release, tab separated.
const rpmFormat = `%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n`

// collectPackages fills s.Packages from dpkg, or from rpm on a machine
// that has rpm and no dpkg.
func (m machine) collectPackages(ctx context.Context, s *wire.Snapshot) error {
	pkgs, err := m.packages(ctx)
	if err != nil {
		return fmt.Errorf("packages: %w", err)
	}
	s.Packages = pkgs
	m.log.Debug("collected packages", "count", len(pkgs))
	return nil
}

func (m machine) packages(ctx context.Context) ([]wire.Package, error) {
	if dpkg, err := m.lookPath("dpkg-query"); err == nil {
		args := []string{"-W", "-f=" + dpkgFormat}
		if !m.isHost() {
			args = append([]string{"--admindir=" + m.path("/var/lib/dpkg")}, args...)
		}
		out, err := m.output(ctx, dpkg, args...)
		if err != nil {
			return nil, err
		}
		return parseDpkg(string(out)), nil
	}
	if rpm, err := m.lookPath("rpm"); err == nil {
		args := []string{"-qa", "--qf", rpmFormat}
		if !m.isHost() {
			args = append([]string{"--root", m.root}, args...)
		}
		out, err := m.output(ctx, rpm, args...)
		if err != nil {
			return nil, err
		}
		return parseRPM(string(out)), nil
	}
	return nil, errors.New("neither dpkg-query nor rpm is installed")
}

// parseDpkg parses dpkgFormat output, keeping installed packages only:
// dpkg also lists removed packages whose configuration files remain.
func parseDpkg(out string) []wire.Package {
	var pkgs []wire.Package
	for line := range strings.Lines(out) {
		f := strings.Split(strings.TrimRight(line, "\r\n"), "\t")
		if len(f) < 2 || f[0] == "" {
			continue
		}
		if len(f) >= 3 && !dpkgInstalled(f[2]) {
			continue
		}
		pkgs = append(pkgs, wire.Package{Name: f[0], Version: f[1]})
	}
	return pkgs
}

// dpkgInstalled reads the second letter of a status abbreviation such as
// "ii " or "rc ": installed, or installed with triggers awaited or pending.
func dpkgInstalled(abbrev string) bool {
	return len(abbrev) >= 2 && strings.IndexByte("iWt", abbrev[1]) >= 0
}

// parseRPM parses rpmFormat output. The gpg-pubkey entries rpm lists are
// imported signing keys, not software, and are left out.
func parseRPM(out string) []wire.Package {
	var pkgs []wire.Package
	for line := range strings.Lines(out) {
		name, version, ok := strings.Cut(strings.TrimRight(line, "\r\n"), "\t")
		if !ok || name == "" || name == "gpg-pubkey" {
			continue
		}
		pkgs = append(pkgs, wire.Package{Name: name, Version: version})
	}
	return pkgs
}
