package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Validation of what other brokers send. Every record this package writes
// passes these checks (local writes run the same checks on what they
// store), so a batch is refused only when it was damaged or forged, never
// because of what a broker stored.

var (
	checkInReasons = map[string]bool{wire.ReasonEnroll: true, wire.ReasonReboot: true, wire.ReasonRestart: true,
		wire.ReasonInterval: true, wire.ReasonNetwork: true, wire.ReasonDemand: true,
		wire.ReasonUpdated: true, wire.ReasonRolledBack: true, wire.ReasonUnclean: true, wire.ReasonQuiet: true}
	modes = map[string]bool{wire.ModeReadOnly: true, wire.ModeInteractive: true, wire.ModeElevated: true}
)

// validID checks a machine ID, a peer ID or a token hash: 1-128 letters,
// digits, '.', '-' or '_'.
func validID(what, s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("%s must be 1-128 characters, got %d", what, len(s))
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("%s %q: only letters, digits, '.', '-' and '_' are allowed", what, s)
		}
	}
	return nil
}

func validText(what, s string) error {
	if len(s) > maxText {
		return fmt.Errorf("%s is %d bytes, limit %d", what, len(s), maxText)
	}
	return nil
}

// Validate checks a key's kind and the form of its ID.
func (k Key) Validate() error {
	var err error
	switch k.Kind {
	case KindMachine:
		err = validID("machine id", k.ID)
	case KindToken:
		err = validID("token hash", k.ID)
	case KindClient:
		err = wire.ValidName("client name", k.ID)
	case KindTechnician:
		err = wire.ValidName("technician name", k.ID)
	case KindJob:
		err = validID("job id", k.ID)
	case KindRemoval:
		err = validID("machine id", k.ID)
	case KindRelease:
		err = wire.ValidVersion(k.ID)
	case KindRollout:
		err = validID("rollout id", k.ID)
	case KindPolicy:
		_, _, err = ParseScope(k.ID)
	case KindReleaseKey:
		if k.ID != FleetKeyName {
			err = fmt.Errorf("release key record id %q, want %q", k.ID, FleetKeyName)
		}
	case KindAdmin:
		if k.ID != AdminName {
			err = fmt.Errorf("admin record id %q, want %q", k.ID, AdminName)
		}
	default:
		err = fmt.Errorf("unknown kind %q", k.Kind)
	}
	if err != nil {
		return malformed("%v", err)
	}
	return nil
}

// Validate checks a clock: a wall time after 1970 and a valid origin.
func (c Clock) Validate() error {
	if c.Wall <= 0 || c.Wall > maxWallMS {
		return fmt.Errorf("clock wall time %d ms out of range", c.Wall)
	}
	return wire.ValidName("clock origin", c.Origin)
}

// maxWallMS is the start of year 9999 in Unix milliseconds.
var maxWallMS = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// Validate checks a version: a valid key and the fields its kind uses.
func (v *Version) Validate() error {
	if err := v.Key.Validate(); err != nil {
		return err
	}
	var err error
	if v.Kind == KindMachine {
		if !v.Clock.IsZero() || v.Deleted {
			err = errors.New("a machine version has no clock and no tombstone")
		}
	} else {
		switch {
		case v.Seq != 0 || !v.At.IsZero() || !v.Seen.IsZero():
			err = errors.New("a control record version has no seq, at or seen")
		default:
			err = v.Clock.Validate()
		}
	}
	if err != nil {
		return malformed("%s: %v", v.Key, err)
	}
	return nil
}

// Validate checks a record as it arrives from another broker: its key,
// that exactly the payload of its kind is present, and every field of
// that payload, including that a machine's snapshot is the exact JSON
// whose digest the record names.
func (r *Record) Validate() error {
	_, err := r.check()
	return err
}

// check validates r and returns its decoded snapshot, if it has one.
func (r *Record) check() (*wire.Snapshot, error) {
	if err := r.Key.Validate(); err != nil {
		return nil, err
	}
	var (
		snap *wire.Snapshot
		err  error
	)
	set := 0
	for _, p := range []bool{r.Machine != nil, r.Client != nil, r.Token != nil, r.Technician != nil, r.Admin != nil, r.Job != nil, r.Removal != nil,
		r.Release != nil, r.ReleaseKey != nil, r.Rollout != nil, r.Policy != nil} {
		if p {
			set++
		}
	}
	switch {
	case set != 1:
		err = fmt.Errorf("%d payloads, want exactly one", set)
	case r.Kind == KindMachine && r.Machine != nil:
		snap, err = r.Machine.check()
	case r.Kind == KindClient && r.Client != nil:
		err = r.Client.check(r.ID)
	case r.Kind == KindToken && r.Token != nil:
		err = r.Token.check()
	case r.Kind == KindTechnician && r.Technician != nil:
		err = r.Technician.check(r.ID)
	case r.Kind == KindAdmin && r.Admin != nil:
		err = r.Admin.check()
	case r.Kind == KindJob && r.Job != nil:
		err = r.Job.check(r.ID)
	case r.Kind == KindRemoval && r.Removal != nil:
		err = r.Removal.check(r.ID)
	case r.Kind == KindRelease && r.Release != nil:
		err = r.Release.check(r.ID)
	case r.Kind == KindReleaseKey && r.ReleaseKey != nil:
		err = r.ReleaseKey.check()
	case r.Kind == KindRollout && r.Rollout != nil:
		err = r.Rollout.check(r.ID)
	case r.Kind == KindPolicy && r.Policy != nil:
		err = r.Policy.check(r.ID)
	default:
		err = errors.New("the payload does not match the kind")
	}
	if err != nil {
		return nil, malformed("%s: %v", r.Key, err)
	}
	return snap, nil
}

func (st *Stamp) check() error {
	if err := st.Clock.Validate(); err != nil {
		return err
	}
	if err := st.Born.Validate(); err != nil {
		return fmt.Errorf("born: %w", err)
	}
	if st.Born.After(st.Clock) {
		return errors.New("born after its last write")
	}
	return nil
}

func (c *ClientRecord) check(id string) error {
	if c.Name != id {
		return fmt.Errorf("name %q under key %q", c.Name, id)
	}
	if c.Deleted && !c.CreatedAt.IsZero() {
		return errors.New("a tombstone carries no creation time")
	}
	return c.Stamp.check()
}

func (t *TokenRecord) check() error {
	if err := t.Stamp.check(); err != nil {
		return err
	}
	if t.Deleted {
		if t.Token != (Token{}) || t.Spent != nil {
			return errors.New("a tombstone carries no token fields")
		}
		return nil
	}
	if err := wire.ValidName("client", t.Client); err != nil {
		return err
	}
	if t.Uses < 0 || t.Uses > MaxUses {
		return fmt.Errorf("uses %d out of range", t.Uses)
	}
	if len(t.Spent) > maxBrokers {
		return fmt.Errorf("%d brokers in the use counter, limit %d", len(t.Spent), maxBrokers)
	}
	for b, n := range t.Spent {
		if err := wire.ValidName("broker", b); err != nil {
			return err
		}
		if n <= 0 || n > MaxUses {
			return fmt.Errorf("broker %s spent %d uses: out of range", b, n)
		}
	}
	if want := max(0, t.Uses-t.spent()); t.UsesLeft != want {
		return fmt.Errorf("uses_left %d, want %d", t.UsesLeft, want)
	}
	return validText("created_by", t.CreatedBy)
}

func (t *TechnicianRecord) check(id string) error {
	if t.Name != id {
		return fmt.Errorf("name %q under key %q", t.Name, id)
	}
	if err := t.Stamp.check(); err != nil {
		return err
	}
	if t.Deleted {
		if !t.tombstoneShape() {
			return errors.New("a tombstone carries no technician fields")
		}
		return nil
	}
	if len(t.Clients) == 0 || len(t.Clients) > MaxKeysPerTechnician {
		return fmt.Errorf("%d clients, want 1-%d", len(t.Clients), MaxKeysPerTechnician)
	}
	for _, c := range t.Clients {
		if c == "*" {
			continue
		}
		if err := wire.ValidName("client", c); err != nil {
			return err
		}
	}
	if len(t.Modes) > len(modes) {
		return fmt.Errorf("%d modes", len(t.Modes))
	}
	for _, m := range t.Modes {
		if !modes[m] {
			return fmt.Errorf("unknown mode %q", m)
		}
	}
	if len(t.Keys) > MaxKeysPerTechnician {
		return fmt.Errorf("%d keys, limit %d", len(t.Keys), MaxKeysPerTechnician)
	}
	for i, k := range t.Keys {
		if err := validID("key", k); err != nil {
			return err
		}
		if i > 0 && k <= t.Keys[i-1] {
			return errors.New("keys are not sorted and unique")
		}
	}
	if t.LoginHash != "" {
		if t.LoginUsed {
			return errors.New("a used login keeps no hash")
		}
		if err := validID("login hash", t.LoginHash); err != nil {
			return err
		}
	}
	return nil
}

func (t *TechnicianRecord) tombstoneShape() bool {
	return !t.Admin && t.Clients == nil && t.Modes == nil && t.Keys == nil && t.CreatedAt.IsZero() &&
		t.LoginHash == "" && t.LoginExpiresAt.IsZero() && !t.LoginUsed && !t.Disabled && t.DisabledAt == nil && t.DisabledBy == ""
}

func (a *AdminRecord) check() error {
	if err := a.Stamp.check(); err != nil {
		return err
	}
	if a.Deleted {
		if a.Hash != "" {
			return errors.New("a tombstone carries no hash")
		}
		return nil
	}
	return validID("admin hash", a.Hash)
}

// check validates a machine record and returns its decoded snapshot.
func (m *MachineRecord) check() (*wire.Snapshot, error) {
	if err := wire.ValidName("machine name", m.Name); err != nil {
		return nil, err
	}
	if err := wire.ValidName("client", m.Client); err != nil {
		return nil, err
	}
	if m.LastUpdate != nil {
		if err := m.LastUpdate.Validate(); err != nil {
			return nil, err
		}
	}
	if m.CheckIn == nil {
		if m.Snapshot != nil || m.History != nil || m.FirstSeen != nil {
			return nil, errors.New("a snapshot, history or first_seen without a check-in")
		}
		return nil, nil
	}
	if m.Hostname != "" {
		return nil, errors.New("hostname is sent only before the first check-in")
	}
	snap, err := m.checkSnapshot()
	if err != nil {
		return nil, err
	}
	return snap, m.checkHistory()
}

// checkSnapshot validates the latest check-in and its snapshot.
func (m *MachineRecord) checkSnapshot() (*wire.Snapshot, error) {
	c := m.CheckIn
	switch {
	case c.Seq == 0:
		return nil, errors.New("check-in seq must be positive")
	case !checkInReasons[c.Reason]:
		return nil, fmt.Errorf("unknown check-in reason %q", c.Reason)
	case !validDigest(c.Digest):
		return nil, errors.New("check-in digest is not a SHA-256 in hex")
	case len(m.Snapshot) == 0:
		return nil, errors.New("a check-in without its snapshot")
	}
	sum := sha256.Sum256(m.Snapshot)
	if hex.EncodeToString(sum[:]) != c.Digest {
		return nil, errors.New("the snapshot does not match the check-in digest")
	}
	snap := new(wire.Snapshot)
	if err := json.Unmarshal(m.Snapshot, snap); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if err := snap.Validate(); err != nil {
		return nil, err
	}
	// The stored form is what json.Marshal makes of the snapshot; anything
	// else (other spacing, unknown fields) would store bytes no broker
	// wrote.
	if canon, err := json.Marshal(snap); err != nil || !bytes.Equal(canon, m.Snapshot) {
		return nil, errors.New("the snapshot is not in its stored form")
	}
	if c.BootID != snap.BootID || !c.CollectedAt.Equal(snap.CollectedAt) {
		return nil, errors.New("check-in boot_id or collected_at differ from the snapshot's")
	}
	if len(m.FirstSeen) > len(snap.PendingUpdates) {
		return nil, errors.New("first_seen names updates that are not pending")
	}
	for _, u := range snap.PendingUpdates {
		if _, ok := m.FirstSeen[strings.ToLower(u.ID)]; !ok {
			return nil, fmt.Errorf("first_seen lacks pending update %q", u.ID)
		}
	}
	for id := range m.FirstSeen {
		if !slices.ContainsFunc(snap.PendingUpdates, func(u wire.PendingUpdate) bool { return strings.ToLower(u.ID) == id }) {
			return nil, fmt.Errorf("first_seen names %q, which is not pending", id)
		}
	}
	return snap, nil
}

// checkHistory validates history items: newest first, each seq at most
// the latest check-in's.
func (m *MachineRecord) checkHistory() error {
	if len(m.History) > MaxHistoryItems {
		return fmt.Errorf("%d history items, limit %d", len(m.History), MaxHistoryItems)
	}
	prev := m.CheckIn.Seq + 1
	for i, it := range m.History {
		var err error
		switch {
		case it.Seq == 0 || it.Seq >= prev:
			err = errors.New("seq out of order or above the latest check-in")
		case !checkInReasons[it.Reason]:
			err = fmt.Errorf("unknown reason %q", it.Reason)
		case it.Digest != "" && !validDigest(it.Digest):
			err = errors.New("digest is not a SHA-256 in hex")
		case it.Packages < 0 || it.PendingUpdates < 0:
			err = errors.New("negative count")
		case len(it.Detail) > wire.MaxAwayDetail:
			err = fmt.Errorf("detail over %d bytes", wire.MaxAwayDetail)
		}
		if err != nil {
			return fmt.Errorf("history[%d]: %w", i, err)
		}
		prev = it.Seq
	}
	return nil
}

func validDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
