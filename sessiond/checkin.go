package sessiond

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/collect"
	"github.com/readymesh/readymesh/sessiond/localdb"
	"github.com/readymesh/readymesh/sessiond/netwatch"
)

// checkInResult answers a demand for a check-in.
type checkInResult struct {
	Seq    uint64
	Reason string
	Err    error
}

// runCheckIns owns the check-in schedule: one at start, one per interval,
// one per network change, and one per demand. Triggers that arrive while a
// check-in is pending fold into it.
func (a *Agent) runCheckIns(ctx context.Context) {
	quiet := a.isQuiet()
	tick := time.NewTimer(a.checkInEvery(quiet))
	defer tick.Stop()
	netc := a.watchNetwork(ctx)
	reason := "start" // resolved to enroll, reboot or restart with the snapshot
	var waiters []chan checkInResult
	retry := bridge.Backoff{Min: time.Second, Max: time.Minute}
	quietRetry := bridge.Backoff{Min: time.Minute, Max: time.Minute}
	var retryC <-chan time.Time
	for {
		if reason != "" && retryC == nil {
			seq, used, err := a.checkInNow(ctx, reason)
			if ctx.Err() != nil {
				return
			}
			for _, w := range waiters {
				w <- checkInResult{Seq: seq, Reason: used, Err: err}
			}
			waiters = nil
			if err != nil {
				wait := retry.Next()
				if a.isQuiet() {
					// A quiet agent retries sparingly, every retry being
					// traffic on a metered link: from a minute, doubling
					// up to a quarter of its quiet interval.
					_, every := a.onMetered()
					quietRetry.Max = max(every/4, time.Minute)
					wait = max(quietRetry.Next(), time.Minute)
				}
				a.log.Warn("check-in failed; will retry", "reason", used, "err", err, "in", wait.Round(time.Millisecond))
				retryC = time.After(wait)
			} else {
				retry.Reset()
				quietRetry.Reset()
				reason = ""
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-retryC:
			retryC = nil
		case <-tick.C:
			reason = pick(reason, wire.ReasonInterval)
			tick.Reset(a.checkInEvery(quiet))
		case <-a.modeKick:
			if q := a.isQuiet(); q != quiet {
				// Quiet mode began or ended: the cadence changes now.
				quiet = q
				tick.Reset(a.checkInEvery(quiet))
				if quiet {
					// One quiet check-in at once: the broker learns the
					// quiet cadence (readiness judges staleness by it)
					// and that the machine is quiet, even if no notice
					// could be sent (it woke on a metered link).
					reason = pick(reason, wire.ReasonInterval)
				}
			}
		case <-netc:
			if !a.isQuiet() {
				reason = pick(reason, wire.ReasonNetwork)
			}
		case w := <-a.demand:
			waiters = append(waiters, w)
			reason, retryC = wire.ReasonDemand, nil
		}
	}
}

// checkInEvery is the time between periodic check-ins, quiet or not.
func (a *Agent) checkInEvery(quiet bool) time.Duration {
	if quiet {
		_, every := a.onMetered()
		return every
	}
	return a.cfg.CheckInInterval
}

// checkInNow makes a check-in: over the bridge, or, in quiet mode,
// over a connection made for it.
func (a *Agent) checkInNow(ctx context.Context, reason string) (uint64, string, error) {
	if a.isQuiet() {
		return a.quietCheckIn(ctx, reason)
	}
	return a.checkInWhenUp(ctx, reason)
}

// pick keeps a pending start reason (reboot/restart must be reported) and
// otherwise takes the newest trigger.
func pick(pending, next string) string {
	if pending == "start" {
		return pending
	}
	return next
}

// watchNetwork returns a channel of network changes, or nil (never ready)
// when the platform cannot watch or the agent plays a fixture machine.
func (a *Agent) watchNetwork(ctx context.Context) <-chan netwatch.Change {
	if a.cfg.Inventory != "" {
		return nil
	}
	c, err := netwatch.Watch(ctx, netwatch.Config{Logger: a.log})
	if err != nil {
		a.log.Warn("not watching network changes", "err", err)
		return nil
	}
	return c
}

// requestCheckIn asks the check-in loop for a check-in and waits for it.
func (a *Agent) requestCheckIn(ctx context.Context) checkInResult {
	w := make(chan checkInResult, 1)
	select {
	case a.demand <- w:
	case <-ctx.Done():
		return checkInResult{Err: ctx.Err()}
	}
	select {
	case r := <-w:
		return r
	case <-ctx.Done():
		return checkInResult{Err: ctx.Err()}
	}
}

// checkInWhenUp waits (bounded) for the bridge, collects a snapshot and
// sends it.
func (a *Agent) checkInWhenUp(ctx context.Context, reason string) (uint64, string, error) {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	broker, err := a.waitUpOrQuiet(wctx)
	cancel()
	if errors.Is(err, errQuiet) {
		// Quiet mode began while the check-in waited for the bridge.
		return a.quietCheckIn(ctx, reason)
	}
	if err != nil {
		return 0, reason, fmt.Errorf("bridge not up: %w", err)
	}
	snap, reason, pend := a.snapshot(ctx, reason)
	seq, err := a.sendCompact(ctx, broker, reason, snap, pend)
	return seq, reason, err
}

// errQuiet ends a wait for the bridge that quiet mode will keep down.
var errQuiet = errors.New("quiet mode: the bridge stays down")

// waitUpOrQuiet is waitUp that gives up with errQuiet when the bridge is
// held down for quiet mode.
func (a *Agent) waitUpOrQuiet(ctx context.Context) (peer.ID, error) {
	for {
		up, broker, changed := a.bridgeState()
		if up {
			return broker, nil
		}
		_, _, held := a.held()
		if a.isQuiet() {
			return "", errQuiet
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-changed:
		case <-held:
		}
	}
}

// snapshot collects a snapshot and resolves the reason "start" to what
// the first check-in of a run reports: an update's outcome, an unclean
// end of the previous run, a reboot, or a restart.
func (a *Agent) snapshot(ctx context.Context, reason string) (*wire.Snapshot, string, *pendingReport) {
	snap := collect.Collect(ctx, a.collectors, a.cfg.Now().UTC())
	a.applyConsent(snap)
	a.applyHistory(snap)
	a.applyAway(snap)
	var pend *pendingReport
	if reason == "start" {
		// An update's outcome, when one waits to be told, is the
		// reason of the first check-in after it.
		if pend = a.pendingUpdate(); pend != nil {
			reason = pend.report.Outcome
		} else if a.unclean {
			reason = wire.ReasonUnclean
		} else {
			reason = a.startReason(snap.BootID)
		}
	}
	return snap, reason, pend
}

// sendCompact sends a check-in and records an update's outcome as told.
// A quiet check-in leaves out the package list when it is the one last
// sent whole (its hash instead: Snapshot.PackagesSHA256); if the broker
// no longer holds that list it asks for the whole snapshot, which is sent
// at once.
func (a *Agent) sendCompact(ctx context.Context, broker peer.ID, reason string, snap *wire.Snapshot, pend *pendingReport) (uint64, error) {
	sent := snap
	if reason == wire.ReasonQuiet {
		if sum := wire.PackagesSHA256(snap.Packages); sum == a.packagesSent() {
			compact := *snap
			compact.Packages, compact.PackagesSHA256 = nil, sum
			sent = &compact
		}
	}
	seq, err := a.send(ctx, broker, reason, sent, pend.reportOrNil())
	var we *wire.Error
	if sent != snap && errors.As(err, &we) && we.Code == wire.CodeNeedFull {
		a.log.Info("the broker asked for the whole snapshot", "reason", reason)
		seq, err = a.send(ctx, broker, reason, snap, pend.reportOrNil())
	}
	if err == nil && pend != nil {
		pend.acked()
	}
	if err == nil && sent == snap {
		a.setPackagesSent(wire.PackagesSHA256(snap.Packages))
	}
	return seq, err
}

// packagesSent is the hash of the package list last sent whole and
// acknowledged.
func (a *Agent) packagesSent() string {
	st, err := a.db.Away()
	if err != nil {
		return ""
	}
	return st.PackagesSHA256
}

// setPackagesSent records the hash of a package list sent whole.
func (a *Agent) setPackagesSent(sum string) {
	if sum == a.packagesSent() {
		return
	}
	if _, err := a.db.EditAway(func(s *localdb.AwayState) { s.PackagesSHA256 = sum }); err != nil {
		a.log.Warn("could not keep the package list's hash", "err", err)
	}
}

// startReason tells a reboot from a restart by the boot ID.
func (a *Agent) startReason(bootID string) string {
	last, ok, _ := a.db.Last()
	switch {
	case !ok:
		return wire.ReasonEnroll
	case bootID != "" && last.BootID != bootID:
		return wire.ReasonReboot
	}
	return wire.ReasonRestart
}

// maxSkipTo is the highest stored sequence an agent moves past: far above
// any real count (one check-in a second for 10^11 years), far below the
// wrap.
const maxSkipTo = 1 << 62

// send commits the next sequence number, sends the check-in (with upd,
// an update's outcome, when not nil), and records the acknowledgement. If the broker already holds a higher sequence (the
// state directory was restored from a backup), it moves past it once.
func (a *Agent) send(ctx context.Context, broker peer.ID, reason string, snap *wire.Snapshot, upd *wire.UpdateReport) (uint64, error) {
	for attempt := 0; attempt < 2; attempt++ {
		seq, err := a.db.NextSeq()
		if err != nil {
			return 0, err
		}
		ci := wire.CheckIn{MachineID: a.key.ID.String(), Seq: seq, Reason: reason, Snapshot: *snap, Update: upd}
		ack, err := a.sendOnce(ctx, broker, &ci)
		if err != nil {
			return 0, err
		}
		if ack.Error == nil {
			last := localdb.LastCheckIn{Seq: seq, BootID: snap.BootID, At: ack.StoredAt, Reason: reason}
			if err := a.db.SetLast(last); err != nil {
				return seq, err
			}
			a.ackedSeq.Store(seq)
			a.learnPolicy(ack.Policy)
			a.log.Info("checked in", "seq", seq, "reason", reason, "duplicate", ack.Duplicate)
			return seq, nil
		}
		if ack.Error.Code != wire.CodeConflict || ack.Seq == 0 {
			return 0, fmt.Errorf("broker refused check-in %d: %w", seq, ack.Error)
		}
		if ack.Seq > maxSkipTo {
			// Moving there would wrap the counter to 0, which every broker
			// refuses: the agent could never check in again.
			return 0, fmt.Errorf("broker claims a stored check-in sequence of %d, past the %d an agent can move to", ack.Seq, uint64(maxSkipTo))
		}
		a.log.Warn("broker holds a newer check-in sequence; moving past it", "ours", seq, "stored", ack.Seq)
		if err := a.db.SkipTo(ack.Seq); err != nil {
			return 0, err
		}
	}
	return 0, errors.New("check-in sequence conflict persists")
}

// sendOnce sends one check-in, retrying the same sequence and content on
// transport errors: the broker acknowledges a retry of a stored check-in
// as a duplicate, so a lost acknowledgement costs nothing.
func (a *Agent) sendOnce(ctx context.Context, broker peer.ID, ci *wire.CheckIn) (*wire.CheckInAck, error) {
	var err error
	for try := 0; try < 3; try++ {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var ack wire.CheckInAck
		err = bridge.Call(cctx, a.host, broker, wire.ProtoCheckIn, ci, &ack, wire.MaxControl)
		cancel()
		if err == nil {
			return &ack, nil
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	return nil, fmt.Errorf("send check-in %d: %w", ci.Seq, err)
}
