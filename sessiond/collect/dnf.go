package collect

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/readymesh/readymesh/peer/wire"
)

// checkUpdateArgs ask dnf or yum for pending updates from the metadata
// already cached (-C), as apt-get -s does: refreshing metadata is the
// machine's own job, and a check-in must not wait on mirrors.
var checkUpdateArgs = []string{"-q", "-C", "check-update"}

// dnfUpdates runs "dnf check-update" (or yum's) and parses it. The command
// exits 100 when updates are pending and 0 when none are.
//
// Security is only set when the repository's name mentions security:
// telling security errata apart needs "dnf updateinfo", which is not run.
func (m machine) dnfUpdates(ctx context.Context, dnf string) ([]wire.PendingUpdate, error) {
	out, err := m.output(ctx, dnf, checkUpdateArgs...)
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 100) {
		return nil, err
	}
	return parseCheckUpdate(string(out), filepath.Base(dnf)), nil
}

// parseCheckUpdate parses check-update's table of "NAME.ARCH VERSION REPO"
// rows, which dnf wraps onto two lines when the name is long. The
// obsoletes table that may follow is not read. ID is the name without the
// architecture, to match the installed package's name.
func parseCheckUpdate(out, source string) []wire.PendingUpdate {
	var ups []wire.PendingUpdate
	var carry []string // the start of a wrapped row
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "Obsoleting Packages") {
			break
		}
		f := append(carry, strings.Fields(line)...)
		carry = nil
		switch {
		case len(f) < 3 && len(f) > 0 && strings.Contains(f[0], "."):
			carry = f
		case len(f) == 3:
			if u, ok := checkUpdateRow(f, source); ok {
				ups = append(ups, u)
			}
		}
	}
	return ups
}

// checkUpdateRow turns NAME.ARCH, VERSION, REPO into an update.
func checkUpdateRow(f []string, source string) (wire.PendingUpdate, bool) {
	dot := strings.LastIndexByte(f[0], '.')
	if dot <= 0 || dot == len(f[0])-1 || !strings.ContainsAny(f[1], "0123456789") {
		return wire.PendingUpdate{}, false
	}
	return wire.PendingUpdate{
		ID:       f[0][:dot],
		Version:  f[1],
		Source:   source,
		Security: strings.Contains(strings.ToLower(f[2]), "security"),
	}, true
}
