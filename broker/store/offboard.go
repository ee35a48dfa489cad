package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// Offboarding: taking a machine out of the fleet, disabling or removing a
// technician, revoking an enrolment token, removing a client. Each is a
// control record write, so it replicates like any other (a notice at
// once, anti-entropy behind it), and each broker that commits one, its own
// or imported, reports it through Config.OnRevoke so it can end what the
// revoked party holds open there.
//
// A removed machine leaves a RemovalRecord in place of its machine record:
// its key stays refused (with the record's Message) on every broker for as
// long as the store lives, its readiness and history leave the store, and
// its past stays in the audit log. The removal is never a tombstone, so
// it never expires: an old broker coming back with the machine's record
// cannot bring it back.
//
// Removing a machine also clears its metered policy, and removing a
// client clears the client's and those of its machines (tombstones, in
// the same commit). A broker that imports a removal clears the machine's
// policy there too, so it is gone even before the tombstone arrives.

// More errors callers branch on.
var (
	// ErrRemoved is a machine that was removed from the fleet.
	ErrRemoved = errors.New("machine was removed")
	// ErrDisabled is a technician that is disabled.
	ErrDisabled = errors.New("technician is disabled")
	// ErrClientInUse is a client that still has machines.
	ErrClientInUse = errors.New("client still has machines")
	// ErrProtected is the admin technician, which only rotating the
	// admin credential changes.
	ErrProtected = errors.New("the admin technician cannot be removed or disabled")
)

// RemovalRecord is a machine removed from the fleet: who removed it, when,
// and what it was. It is stored under KindRemoval and the machine's ID.
type RemovalRecord struct {
	ID     string    `json:"id"`
	Client string    `json:"client"`
	Name   string    `json:"name"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Stamp
}

// Message is what the removed machine's agent is told and logs.
func (r *RemovalRecord) Message() string {
	return fmt.Sprintf("%s was removed from %s by %s at %s", r.Name, r.Client, r.By, r.At.UTC().Format(time.RFC3339))
}

func (r *RemovalRecord) check(id string) error {
	switch {
	case r.ID != id:
		return fmt.Errorf("id %q under key %q", r.ID, id)
	case r.Deleted:
		return errors.New("a removal is never deleted")
	case r.At.IsZero():
		return errors.New("removal time is zero")
	}
	for what, v := range map[string]string{"client": r.Client, "name": r.Name, "by": r.By} {
		if err := wire.ValidName(what, v); err != nil {
			return err
		}
	}
	return r.Stamp.check()
}

// mergeRemoval: the later clock wins (removals are written once).
func mergeRemoval(l, r *RemovalRecord) *RemovalRecord {
	w, _, _, _ := winner(l, r, l.Stamp, r.Stamp)
	return w
}

// Revoked is an end of access that a commit made, for Config.OnRevoke.
// Exactly one of Technician and Machine is set.
type Revoked struct {
	// Technician was disabled or removed; Keys are the peer IDs that
	// logged in as it.
	Technician string
	Keys       []string
	// Machine is the ID of a machine removed from the fleet.
	Machine string
	// Reason says who did what when, for logs and for the parties told.
	Reason string
}

// Removal returns the removal record of machine id, if it was removed.
func (s *Store) Removal(id string) (RemovalRecord, bool) {
	var r RemovalRecord
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		found, err = getJSON(tx.Bucket(bktRemovals), []byte(id), &r)
		return err
	})
	return r, found && err == nil
}

// removedError is ErrRemoved with the removal's message.
func removedError(r *RemovalRecord) error {
	return fmt.Errorf("%s: %w", r.Message(), ErrRemoved)
}

// RemoveMachine takes machine id out of the fleet: a RemovalRecord
// replaces its machine record, snapshot and history, its name is free
// again in its client, its policy is cleared, and the agent's key is
// refused from now on.
func (s *Store) RemoveMachine(id, by string, now time.Time) (RemovalRecord, error) {
	var out RemovalRecord
	err := s.write(func(b *batch) error {
		if r, found, err := b.removal(id); err != nil {
			return err
		} else if found {
			return refuse(removedError(r))
		}
		m, ok := b.machine(id)
		if !ok {
			return refuse(fmt.Errorf("machine %s: %w", id, ErrNotFound))
		}
		out = RemovalRecord{ID: id, Client: m.Client, Name: m.Name, By: by, At: now.UTC(), Stamp: b.stamp()}
		if err := out.check(id); err != nil {
			return refuse(fmt.Errorf("%w: removal: %v", ErrMalformed, err))
		}
		if err := b.putControl(Key{KindRemoval, id}, &out); err != nil {
			return err
		}
		return b.dropMachine(&out)
	})
	return out, err
}

// removal reads a machine's removal record as of the batch.
func (b *batch) removal(id string) (*RemovalRecord, bool, error) {
	rec, found, err := getControl(b.tx, Key{KindRemoval, id})
	return rec.(*RemovalRecord), found, err
}

// dropMachine deletes what the store holds of a removed machine (its
// record, snapshot, history, name and policy) and notes the revocation.
// Both a removal made here and one imported run it.
func (b *batch) dropMachine(r *RemovalRecord) error {
	b.revoked = append(b.revoked, Revoked{Machine: r.ID, Reason: r.Message()})
	// Before the machine is looked up: a broker can hold a replicated
	// policy for a machine it has not heard of.
	if _, err := b.dropPolicy(MachineScope(r.ID)); err != nil {
		return err
	}
	m, ok := b.machine(r.ID)
	if !ok {
		return nil // removed before this broker heard of it
	}
	b.gone[m.ID] = true
	delete(b.dirty, m.ID)
	for _, bkt := range [][]byte{bktMachines, bktSnapshots} {
		if err := b.tx.Bucket(bkt).Delete([]byte(m.ID)); err != nil {
			return err
		}
	}
	if err := deleteHistory(b.tx, m); err != nil {
		return err
	}
	return b.releaseName(m.ID, m.Client, m.Name)
}

// deleteHistory deletes a machine's history ring.
func deleteHistory(tx *bolt.Tx, m *Machine) error {
	h := tx.Bucket(bktHistory)
	for slot := range m.HistorySlots {
		if err := h.Delete(historyKey(m.ID, slot)); err != nil {
			return err
		}
	}
	return nil
}

// SetTechnicianDisabled disables or enables technician name, recording
// who did it and when. A disabled technician keeps its keys, clients and
// modes, so enabling it restores exactly what it had; meanwhile every
// request with its keys is refused.
func (s *Store) SetTechnicianDisabled(name string, disabled bool, by string, now time.Time) (wire.Technician, error) {
	var out wire.Technician
	err := s.write(func(b *batch) error {
		rec, err := b.liveTechnician(name)
		if err != nil {
			return err
		}
		if rec.Disabled == disabled {
			out = rec.Technician.Technician
			return nil // already so: nothing to write
		}
		c := *rec
		c.Disabled, c.DisabledBy, c.DisabledAt = disabled, "", nil
		if disabled {
			at := now.UTC()
			c.DisabledBy, c.DisabledAt = by, &at
			b.revoked = append(b.revoked, technicianRevoked(&c, "disabled"))
		}
		c.Clock = b.s.clock.tick()
		out = c.Technician.Technician
		return b.putControl(Key{KindTechnician, name}, &c)
	})
	return out, err
}

// RemoveTechnician deletes technician name (a tombstone) and unbinds its
// keys. Creating it again starts it afresh, with a new login token.
func (s *Store) RemoveTechnician(name, by string, now time.Time) error {
	return s.write(func(b *batch) error {
		rec, err := b.liveTechnician(name)
		if err != nil {
			return err
		}
		t := tombstone(rec, b.s.clock.tick()).(*TechnicianRecord)
		if err := b.reindexTechnician(rec, t); err != nil {
			return err
		}
		gone := *rec
		at := now.UTC()
		gone.DisabledBy, gone.DisabledAt = by, &at
		b.revoked = append(b.revoked, technicianRevoked(&gone, "removed"))
		return b.putControl(Key{KindTechnician, name}, t)
	})
}

// liveTechnician reads a technician that exists and is not the admin.
func (b *batch) liveTechnician(name string) (*TechnicianRecord, error) {
	if name == AdminName {
		return nil, refuse(ErrProtected)
	}
	rec, found, err := b.technician(name)
	switch {
	case err != nil:
		return nil, err
	case !found || !rec.exists():
		return nil, refuse(fmt.Errorf("technician %q: %w", name, ErrNotFound))
	}
	return rec, nil
}

// technicianRevoked is the notice of a technician's access ending; the
// record's DisabledBy and DisabledAt say who and when.
func technicianRevoked(t *TechnicianRecord, what string) Revoked {
	r := Revoked{Technician: t.Name, Keys: slices.Clone(t.Keys), Reason: "technician " + t.Name + " was " + what}
	if t.DisabledAt != nil {
		r.Reason += fmt.Sprintf(" by %s at %s", t.DisabledBy, t.DisabledAt.UTC().Format(time.RFC3339))
	}
	return r
}

// noteTechnicianChange notes a revocation when an imported copy of a
// technician ends access that the stored one had: it is now disabled or
// deleted, or lost keys (a new incarnation: the admin credential was
// rotated).
func (b *batch) noteTechnicianChange(old, now *TechnicianRecord) {
	if old == nil || !old.exists() || old.Disabled || len(old.Keys) == 0 {
		return
	}
	switch {
	case !now.exists():
		b.revoked = append(b.revoked, technicianRevoked(old, "removed"))
	case now.Disabled:
		b.revoked = append(b.revoked, technicianRevoked(now, "disabled"))
	default:
		var lost []string
		for _, k := range old.Keys {
			if !slices.Contains(now.Keys, k) {
				lost = append(lost, k)
			}
		}
		if len(lost) == 0 {
			return
		}
		what := "signed out"
		if old.Name == AdminName {
			what = "signed out (admin credential rotated)"
		}
		r := technicianRevoked(old, what)
		r.Keys = lost
		b.revoked = append(b.revoked, r)
	}
}

// TokenInfo is an enrolment token as listings show it: ID is the first 16
// hex digits of its hash, enough to name it in tokens revoke, and never
// enough to enrol with.
type TokenInfo struct {
	ID string `json:"id"`
	Token
}

// tokenIDLen is the length of a token's listed ID.
const tokenIDLen = 16

// Tokens lists the enrolment tokens that exist (not revoked), used up or
// expired ones included, oldest first.
func (s *Store) Tokens() ([]TokenInfo, error) {
	var out []TokenInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktTokens).ForEach(func(k, raw []byte) error {
			var rec TokenRecord
			if _, err := getJSON(tx.Bucket(bktTokens), k, &rec); err != nil {
				return err
			}
			if rec.exists() {
				rec.settle()
				out = append(out, TokenInfo{ID: string(k[:min(len(k), tokenIDLen)]), Token: rec.Token})
			}
			return nil
		})
	})
	slices.SortFunc(out, func(a, b TokenInfo) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, err
}

// RevokeToken deletes the enrolment token whose listed ID (or a longer
// prefix of its hash) is id, so it enrols nobody from now on, on any
// broker. It returns the token as it was and the key of its tombstone.
func (s *Store) RevokeToken(id string) (TokenInfo, Key, error) {
	var out TokenInfo
	var key Key
	if len(id) < tokenIDLen {
		return out, key, fmt.Errorf("token %q: want the %d-digit ID tokens ls shows: %w", id, tokenIDLen, ErrNotFound)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return out, key, fmt.Errorf("token %q: not hexadecimal: %w", id, ErrNotFound)
	}
	err := s.write(func(b *batch) error {
		c := b.tx.Bucket(bktTokens).Cursor()
		var hash []byte
		for k, _ := c.Seek([]byte(id)); k != nil && strings.HasPrefix(string(k), id); k, _ = c.Next() {
			rec, _, err := b.token(string(k))
			if err != nil {
				return err
			}
			if rec.exists() {
				if hash != nil {
					return refuse(fmt.Errorf("token %q names more than one token: give more digits: %w", id, ErrExists))
				}
				hash = slices.Clone(k)
				out = TokenInfo{ID: string(k[:tokenIDLen]), Token: rec.Token}
			}
		}
		if hash == nil {
			return refuse(fmt.Errorf("token %s: %w", id, ErrNotFound))
		}
		rec, _, err := b.token(string(hash))
		if err != nil {
			return err
		}
		key = Key{KindToken, string(hash)}
		return b.putControl(key, tombstone(rec, b.s.clock.tick()))
	})
	return out, key, err
}

// RemoveClient deletes client name. A client that still has machines is
// refused unless force is set; then each of its machines is removed first
// (as RemoveMachine does, by by) and so are its tokens. Its policy and
// its machines' are cleared. It returns the IDs of the machines removed
// and the keys of every record it wrote.
func (s *Store) RemoveClient(name string, force bool, by string, now time.Time) (removed []string, wrote []Key, err error) {
	err = s.write(func(b *batch) error {
		removed, wrote = nil, nil
		rec, found, err := b.client(name)
		switch {
		case err != nil:
			return err
		case !found || !rec.exists():
			return refuse(fmt.Errorf("client %q: %w", name, ErrNotFound))
		}
		var ids []string
		b.s.mu.RLock()
		for id, m := range b.s.machines {
			if m.Client == name && !b.gone[id] {
				ids = append(ids, id)
			}
		}
		b.s.mu.RUnlock()
		slices.Sort(ids)
		if len(ids) > 0 && !force {
			return refuse(fmt.Errorf("client %q has %d machine(s): remove them first, or use --force to remove them with it: %w", name, len(ids), ErrClientInUse))
		}
		for _, id := range ids {
			m, _ := b.machine(id)
			r := &RemovalRecord{ID: id, Client: m.Client, Name: m.Name, By: by, At: now.UTC(), Stamp: b.stamp()}
			if err := b.putControl(Key{KindRemoval, id}, r); err != nil {
				return err
			}
			removed = append(removed, id)
			wrote = append(wrote, Key{KindRemoval, id})
			// dropMachine would clear the policy too; clearing it here
			// says whether there was one to report.
			if ok, err := b.dropPolicy(MachineScope(id)); err != nil {
				return err
			} else if ok {
				wrote = append(wrote, Key{KindPolicy, MachineScope(id)})
			}
			if err := b.dropMachine(r); err != nil {
				return err
			}
		}
		hashes, err := b.dropTokens(name)
		if err != nil {
			return err
		}
		for _, h := range hashes {
			wrote = append(wrote, Key{KindToken, h})
		}
		if ok, err := b.dropPolicy(ClientScope(name)); err != nil {
			return err
		} else if ok {
			wrote = append(wrote, Key{KindPolicy, ClientScope(name)})
		}
		wrote = append(wrote, Key{KindClient, name})
		return b.putControl(Key{KindClient, name}, tombstone(rec, b.s.clock.tick()))
	})
	return removed, wrote, err
}

// dropTokens deletes every live token of client and returns their hashes.
func (b *batch) dropTokens(client string) ([]string, error) {
	var hashes []string
	err := b.tx.Bucket(bktTokens).ForEach(func(k, _ []byte) error {
		rec, _, err := b.token(string(k))
		if err == nil && rec.exists() && rec.Client == client {
			hashes = append(hashes, string(k))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, h := range hashes {
		rec, _, err := b.token(h)
		if err != nil {
			return nil, err
		}
		if err := b.putControl(Key{KindToken, h}, tombstone(rec, b.s.clock.tick())); err != nil {
			return nil, err
		}
	}
	return hashes, nil
}

// RotateAdmin records a new admin credential (its hash) and signs out
// every key bound to the admin technician, on every broker: the admin
// technician starts a new incarnation without keys, which wins over the
// old one wherever it arrives (keys merge only within one incarnation).
// Whoever held the old credential, and logged in with it anywhere, must
// log in again with a broker's current credential. It returns the keys it
// signed out; by and now say who rotated and when.
func (s *Store) RotateAdmin(hash, by string, now time.Time) ([]string, error) {
	var out []string
	err := s.write(func(b *batch) error {
		out = nil
		rec := &AdminRecord{Hash: hash, Stamp: b.stamp()}
		if old, found, err := b.admin(); err != nil {
			return err
		} else if found && old.exists() {
			rec.Born = old.Born
		}
		if err := rec.check(); err != nil {
			return refuse(fmt.Errorf("%w: admin credential: %v", ErrMalformed, err))
		}
		old, found, err := b.technician(AdminName)
		if err != nil {
			return err
		}
		t := &TechnicianRecord{Technician: Technician{Technician: wire.Technician{Name: AdminName, Admin: true,
			Clients: []string{"*"}, Modes: []string{wire.ModeReadOnly, wire.ModeInteractive, wire.ModeElevated},
			CreatedAt: now.UTC()}}, Stamp: b.stamp()}
		if found && old.exists() {
			t.Technician.Technician = old.Technician.Technician
			t.Keys = nil
			if len(old.Keys) > 0 {
				gone := *old
				at := now.UTC()
				gone.DisabledBy, gone.DisabledAt = by, &at
				b.revoked = append(b.revoked, technicianRevoked(&gone, "signed out (admin credential rotated)"))
				out = slices.Clone(old.Keys)
			}
		} else {
			old = nil
		}
		if err := b.reindexTechnician(old, t); err != nil {
			return err
		}
		if err := b.putControl(Key{KindAdmin, AdminName}, rec); err != nil {
			return err
		}
		return b.putControl(Key{KindTechnician, AdminName}, t)
	})
	return out, err
}
