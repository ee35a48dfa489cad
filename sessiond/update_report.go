package sessiond

import (
	"fmt"

	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/localdb"
	"github.com/readymesh/readymesh/sessiond/update"
)

// pendingReport is an update outcome the agent's first check-in carries,
// and what to do once that check-in is acknowledged.
type pendingReport struct {
	report wire.UpdateReport
	acked  func()
}

func (p *pendingReport) reportOrNil() *wire.UpdateReport {
	if p == nil {
		return nil
	}
	return &p.report
}

// pendingUpdate returns the update outcome to report, or nil. A new
// binary on trial reports "updated" and, once the broker has it, pins
// the release's next key and marks itself healthy, which is what its
// watchdog commits on. Otherwise an outcome the watchdog recorded (a
// rollback) and no check-in carried yet is reported, then marked told.
func (a *Agent) pendingUpdate() *pendingReport {
	if a.cfg.Trial {
		t, err := update.LoadTrial(a.cfg.StateDir)
		if err != nil {
			a.log.Error("on trial, but the trial state cannot be read; the watchdog will roll back", "err", err)
		}
		switch {
		case t != nil && t.Phase == update.PhaseTrial && t.To != buildinfo.Version:
			// Not the release's build: it must never be committed.
			a.log.Error("the release on trial names another version than this binary's; not marking it healthy, the watchdog will roll back",
				"release", t.To, "binary", buildinfo.Version)
		case t != nil && t.Phase == update.PhaseTrial:
			return &pendingReport{report: t.Report(wire.ReasonUpdated, "", a.cfg.Now()), acked: func() { a.trialAcked(t) }}
		}
	}
	o, err := update.LoadOutcome(a.cfg.StateDir)
	if err != nil {
		a.log.Warn("the last update's outcome cannot be read; not reporting it", "err", err)
		return nil
	}
	if o == nil || o.Reported {
		return nil
	}
	return &pendingReport{report: o.Report, acked: func() {
		o.Reported = true
		if err := update.SaveOutcome(a.cfg.StateDir, *o); err != nil {
			a.log.Warn("could not record that the update's outcome was reported", "err", err)
		}
	}}
}

// trialAcked runs once the broker acknowledged the check-in of the new
// binary on trial: the release's next key is pinned (the healthy marker
// is the commit point, and the watchdog cannot write the database this
// process holds), then the marker is written. So a release key rotates
// at the healthy check-in of the release that names the next key.
func (a *Agent) trialAcked(t *update.Trial) {
	if err := a.pinNextKey(t); err != nil {
		a.log.Error("release key rotation: "+err.Error(), "release", t.To)
	}
	if err := update.MarkHealthy(a.cfg.StateDir, t); err != nil {
		a.log.Error("could not mark the update healthy; the watchdog will roll it back", "err", err)
		return
	}
	a.log.Info("update checked in; marked healthy", "from", t.From, "to", t.To)
}

// pinNextKey pins the next release key the trial's manifest names, after
// verifying the manifest again with the key pinned now. A key pinned
// already (at an earlier start of the same trial, whose manifest then no
// longer verifies with the pinned key) is left as it is.
func (a *Agent) pinNextKey(t *update.Trial) error {
	e, err := a.db.Enrolment()
	if err != nil {
		return fmt.Errorf("cannot read the enrolment: %w", err)
	}
	if rotatedBy(t, e.ReleaseKey) {
		return nil
	}
	key, err := release.ParsePublicKey(e.ReleaseKey)
	if err != nil {
		return fmt.Errorf("the pinned key cannot be read: %w", err)
	}
	m, err := release.Verify(key, t.Manifest, t.Signature)
	if err != nil {
		return fmt.Errorf("the release on trial does not verify: %w", err)
	}
	if m.NextKey == "" {
		return nil
	}
	next, err := canonicalKey(m.NextKey)
	if err != nil {
		return fmt.Errorf("the release names a next key that cannot be read: %w", err)
	}
	if _, err := a.db.EditEnrolment(func(e *localdb.Enrolment) { e.ReleaseKey = next }); err != nil {
		return fmt.Errorf("not pinned: %w", err)
	}
	a.log.Warn("release key rotated by release "+m.Version, "was", key.ID(), "now", keyID(next))
	return nil
}

// rotatedBy reports whether pinned is the next key t's manifest names.
// Only a comparison with what is pinned already, so the manifest need not
// verify for it.
func rotatedBy(t *update.Trial, pinned string) bool {
	m, err := release.Parse(t.Manifest)
	if err != nil || m.NextKey == "" {
		return false
	}
	next, err := canonicalKey(m.NextKey)
	return err == nil && next == pinned
}
