package sessiond

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/localdb"
	"github.com/readymesh/readymesh/sessiond/update"
)

// checkIns makes the rig's stand-in store check-ins: each one is sent on
// the returned channel and acknowledged, or refused with refuse.
func (r *updateRig) checkIns(refuse *wire.Error) <-chan wire.CheckIn {
	got := make(chan wire.CheckIn, 4)
	r.broker.host.SetStreamHandler(wire.ProtoCheckIn, func(s network.Stream) {
		defer s.Close()
		var ci wire.CheckIn
		raw, err := wire.NewReader(s).ReadRaw(wire.MaxSnapshot)
		if err != nil || json.Unmarshal(raw, &ci) != nil {
			return
		}
		got <- ci
		wire.Write(s, &wire.CheckInAck{Seq: ci.Seq, StoredAt: time.Now(), Error: refuse})
	})
	return got
}

// TestTrialCheckIn: the new binary on trial reports the update in its
// first check-in and, only once the broker acknowledged it, pins the
// release's next key and writes the healthy marker its watchdog commits
// on.
func TestTrialCheckIn(t *testing.T) {
	key, next := newTestRelease(t), newTestRelease(t)
	for _, refused := range []bool{false, true} {
		name := map[bool]string{false: "acknowledged", true: "refused"}[refused]
		t.Run(name, func(t *testing.T) {
			r := newUpdateRig(t, key.pub.String(), nil)
			o := key.order(t, "99.0.0", "", []byte("new"), func(m *release.Manifest) { m.NextKey = next.pub.String() })
			tr := update.NewTrial("0.2.0", buildinfo.Version, 15*time.Minute, time.Now())
			tr.Rollout, tr.Exe, tr.Manifest, tr.Signature = o.Rollout, r.exe.Exe, o.Manifest, o.Signature
			if err := tr.Save(r.a.cfg.StateDir); err != nil {
				t.Fatal(err)
			}
			r.a.cfg.Trial = true
			var refuse *wire.Error
			if refused {
				refuse = &wire.Error{Code: wire.CodeInternal, Message: "store unavailable"}
			}
			got := r.checkIns(refuse)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, reason, err := r.a.checkInWhenUp(ctx, "start")
			ci := <-got
			if reason != wire.ReasonUpdated || ci.Reason != wire.ReasonUpdated || ci.Update == nil ||
				ci.Update.From != "0.2.0" || ci.Update.To != buildinfo.Version || ci.Update.Rollout != o.Rollout || ci.Update.Outcome != wire.ReasonUpdated {
				t.Fatalf("check-in %q with %+v", ci.Reason, ci.Update)
			}
			marker, _ := os.ReadFile(filepath.Join(update.Dir(r.a.cfg.StateDir), update.HealthyFile))
			e, _ := r.a.db.Enrolment()
			if refused {
				if err == nil || len(marker) != 0 || e.ReleaseKey != key.pub.String() {
					t.Fatalf("a refused check-in: err %v, marker %q, key pinned %s", err, marker, e.ReleaseKey)
				}
				return
			}
			if err != nil || strings.TrimSpace(string(marker)) != tr.ID {
				t.Fatalf("err %v, healthy marker %q, want %s", err, marker, tr.ID)
			}
			if e.ReleaseKey != next.pub.String() {
				t.Errorf("pinned %s after the release that names the next key", e.ReleaseKey)
			}
			// A second start of the same trial finds the next key pinned.
			if err := r.a.pinNextKey(tr); err != nil {
				t.Errorf("pinning again: %v", err)
			}
			if e, _ := r.a.db.Enrolment(); e.ReleaseKey != next.pub.String() {
				t.Errorf("pinned %s after pinning again", e.ReleaseKey)
			}
		})
	}
}

// TestTrialOtherVersion: a binary whose version is not the one on trial
// reports no update and never marks itself healthy.
func TestTrialOtherVersion(t *testing.T) {
	key := newTestRelease(t)
	r := newUpdateRig(t, key.pub.String(), nil)
	o := key.order(t, "99.0.0", "", []byte("new"), nil)
	tr := update.NewTrial("0.2.0", "99.0.0", 15*time.Minute, time.Now())
	tr.Exe, tr.Manifest, tr.Signature = r.exe.Exe, o.Manifest, o.Signature
	if err := tr.Save(r.a.cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	r.a.cfg.Trial = true
	got := r.checkIns(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := r.a.checkInWhenUp(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	if ci := <-got; ci.Reason == wire.ReasonUpdated || ci.Update != nil {
		t.Errorf("check-in %q with %+v from a binary that is not %s", ci.Reason, ci.Update, tr.To)
	}
	if _, err := os.Stat(filepath.Join(update.Dir(r.a.cfg.StateDir), update.HealthyFile)); !os.IsNotExist(err) {
		t.Errorf("healthy marker written (%v)", err)
	}
}

// TestRolledBackCheckIn: after a rollback, the agent's first check-in
// says so and why, once: the next start reports a plain restart.
func TestRolledBackCheckIn(t *testing.T) {
	r := newUpdateRig(t, "", nil)
	rep := wire.UpdateReport{From: buildinfo.Version, To: "99.0.0", Rollout: "3f9a0c1b2d4e", Outcome: wire.ReasonRolledBack,
		Detail: "exited with status 2 three times at start (last line: panic: boom)", At: time.Now().UTC()}
	if err := update.SaveOutcome(r.a.cfg.StateDir, update.Outcome{Report: rep}); err != nil {
		t.Fatal(err)
	}
	got := r.checkIns(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, want := range []string{wire.ReasonRolledBack, wire.ReasonRestart} {
		if _, _, err := r.a.checkInWhenUp(ctx, "start"); err != nil {
			t.Fatal(err)
		}
		ci := <-got
		if ci.Reason != want || (i == 0) != (ci.Update != nil) {
			t.Fatalf("check-in %d: %q with %+v, want %q", i+1, ci.Reason, ci.Update, want)
		}
		if i == 0 && ci.Update.Detail != rep.Detail {
			t.Errorf("reported %+v", ci.Update)
		}
	}
	if o, _ := update.LoadOutcome(r.a.cfg.StateDir); o == nil || !o.Reported {
		t.Errorf("outcome %+v not marked reported", o)
	}
}

// TestTrustReleaseKey: the key is pinned at the machine, in the database
// when no agent runs and through the running agent otherwise; a different
// pinned key is replaced only when asked, and bad input stores nothing.
func TestTrustReleaseKey(t *testing.T) {
	first, second := newTestRelease(t), newTestRelease(t)
	e := enrol(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pinned := func() string {
		db, err := localdb.Open(filepath.Join(e.state, DBFile))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		en, _ := db.Enrolment()
		return en.ReleaseKey
	}
	pub := "untrusted comment: minisign public key\n" + first.pub.String() + "\n"
	steps := []struct {
		key     string
		replace bool
		changed bool
		err     string
		want    string // the key pinned after
	}{
		{key: "RWnotakey", err: "public key", want: ""},
		{key: pub, changed: true, want: first.pub.String()},
		{key: first.pub.String(), want: first.pub.String()},
		{key: second.pub.String(), err: "another release key is pinned", want: first.pub.String()},
		{key: second.pub.String(), replace: true, changed: true, want: second.pub.String()},
	}
	for i, s := range steps {
		ch, err := TrustReleaseKey(ctx, e.state, s.key, s.replace)
		if s.err != "" {
			if err == nil || !strings.Contains(err.Error(), s.err) {
				t.Fatalf("step %d: err %v, want %q", i, err, s.err)
			}
		} else if err != nil || ch.Changed != s.changed {
			t.Fatalf("step %d: %+v, %v", i, ch, err)
		}
		if got := pinned(); got != s.want {
			t.Fatalf("step %d: pinned %q, want %q", i, got, s.want)
		}
	}
	if _, err := TrustReleaseKey(ctx, t.TempDir(), first.pub.String(), false); err == nil {
		t.Error("pinned a key in a directory no agent was enrolled in")
	}
	// A running agent holds the database: the pin goes through it.
	a, err := New(Config{StateDir: e.state, Net: e.agentNet, SystemBus: NoSystemBus, Inventory: fixture(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.runControl(cctx); close(done) }()
	defer func() { stop(); <-done }()
	var ch KeyChange
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ch, err = TrustReleaseKey(ctx, e.state, first.pub.String(), true); err == nil || time.Now().After(end) {
			break
		}
	}
	if err != nil || !ch.Changed || ch.PreviousID != keyID(second.pub.String()) {
		t.Fatalf("through the running agent: %+v, %v", ch, err)
	}
	if en, _ := a.db.Enrolment(); en.ReleaseKey != first.pub.String() {
		t.Errorf("the running agent pinned %q", en.ReleaseKey)
	}
	if _, err := TrustReleaseKey(ctx, e.state, second.pub.String(), false); !errors.Is(err, ErrOtherKeyPinned) &&
		(err == nil || !strings.Contains(err.Error(), "another release key is pinned")) {
		t.Errorf("replaced through the running agent without --replace: %v", err)
	}
}

// TestEnrolRefusesBadReleaseKey: a token whose release key cannot be read
// is refused before the broker is dialled, and nothing is stored.
func TestEnrolRefusesBadReleaseKey(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	tok := wire.Token{Kind: wire.KindEnroll, Secret: wire.NewSecret(), ReleaseKey: "RWnotakey",
		Broker: wire.BrokerInfo{PeerID: "12D3KooWB131WnfDdChcUbUfkkjY1dE1Te2AuKqmHYGVCPYe7CXM", Addrs: []string{"/ip4/127.0.0.1/udp/9/quic-v1"}}}
	_, err := Enroll(context.Background(), EnrollConfig{StateDir: state, Token: tok.String(), Name: "pc-1", Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "the token's release key") {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("the state directory was made (%v)", err)
	}
}
