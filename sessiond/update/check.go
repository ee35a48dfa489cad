package update

import (
	"errors"
	"fmt"

	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// ErrNoKey refuses every update of an agent that pinned no release key.
// The broker can never pin one: only the enrolment token (made after the
// fleet's key was trusted) or a command at the machine can.
var ErrNoKey = errors.New("no release key is pinned: enrol again with a token made after `meshctl releases trust`, " +
	"or run `sessiond trust-release-key --state DIR KEY` on the machine as root")

// Plan is an update order that passed Check: the verified manifest and
// this platform's binary in it.
type Plan struct {
	Manifest release.Manifest
	Binary   wire.ReleaseBinary
}

// Check decides whether an agent running version running on platform
// (GOOS/GOARCH), which pinned the release key pinned, takes the update
// order o. The manifest must verify against the pinned key and name the
// order's version and a binary for platform; the release must be newer
// than the running version (or older, in a rollback), and the running
// version must not be below the release's minimum.
func Check(o *wire.UpdateOrder, pinned, running, platform string) (Plan, error) {
	if pinned == "" {
		return Plan{}, ErrNoKey
	}
	key, err := release.ParsePublicKey(pinned)
	if err != nil {
		return Plan{}, fmt.Errorf("the pinned release key cannot be read: %w", err)
	}
	m, err := release.Verify(key, o.Manifest, o.Signature)
	switch {
	case errors.Is(err, release.ErrWrongKey):
		return Plan{}, fmt.Errorf("release %s is not signed by the pinned release key %s: refused", o.Version, key.ID())
	case errors.Is(err, release.ErrBadSignature):
		return Plan{}, fmt.Errorf("release %s: the manifest's signature does not verify with the pinned key %s: refused", o.Version, key.ID())
	case err != nil:
		return Plan{}, fmt.Errorf("release %s: %w", o.Version, err)
	}
	if m.Version != o.Version {
		return Plan{}, fmt.Errorf("the order is for release %s but its signed manifest is release %s", o.Version, m.Version)
	}
	bin, ok := m.Binary(platform)
	if !ok {
		return Plan{}, fmt.Errorf("release %s has no binary for %s", m.Version, platform)
	}
	if err := checkVersions(m, running, o.Rollback); err != nil {
		return Plan{}, err
	}
	return Plan{Manifest: m, Binary: bin}, nil
}

// checkVersions refuses a release that is not newer than the running
// version (older is allowed in a rollback; the same never is: there is
// nothing to install) and one whose minimum is above the running version.
func checkVersions(m release.Manifest, running string, rollback bool) error {
	switch c := release.CompareVersions(m.Version, running); {
	case c == 0:
		return fmt.Errorf("release %s is the version running here already", m.Version)
	case c < 0 && !rollback:
		return fmt.Errorf("release %s is older than the running %s: only a rollback rollout installs an older release", m.Version, running)
	}
	if m.MinAgent != "" && release.CompareVersions(running, m.MinAgent) < 0 {
		return fmt.Errorf("release %s updates agents from %s on; this agent is %s", m.Version, m.MinAgent, running)
	}
	return nil
}
