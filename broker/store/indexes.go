package store

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
)

// The lookup buckets (names, techkeys, logins) must say the same thing on
// every broker once records have converged, whatever order they arrived
// in. Locally a name or key is never given twice, but two brokers cut off
// from each other can: then the earlier enrolment holds a machine name
// (then the smaller machine ID), and the smaller technician name holds a
// key or a login hash. Both records are kept.

// holdsBefore reports whether machine a's claim on a name beats b's.
func holdsBefore(a, b *Machine) bool {
	return cmp.Or(a.EnrolledAt.Compare(b.EnrolledAt), cmp.Compare(a.ID, b.ID)) < 0
}

// claimName points m's client and name at m unless another machine with
// that name holds it first.
func (b *batch) claimName(m *Machine) error {
	k := nameKey(m.Client, m.Name)
	names := b.tx.Bucket(bktNames)
	if cur := names.Get(k); cur != nil && string(cur) != m.ID {
		if h, ok := b.machine(string(cur)); ok && h.Client == m.Client && h.Name == m.Name && !holdsBefore(m, h) {
			return nil
		}
	}
	return names.Put(k, []byte(m.ID))
}

// releaseName is called when machine id no longer has client and name:
// if it held them, the next machine with that name does, or nobody.
func (b *batch) releaseName(id, client, name string) error {
	k := nameKey(client, name)
	names := b.tx.Bucket(bktNames)
	if string(names.Get(k)) != id {
		return nil
	}
	var best *Machine
	consider := func(m *Machine) {
		if m.ID != id && m.Client == client && m.Name == name && (best == nil || holdsBefore(m, best)) {
			best = m
		}
	}
	b.s.mu.RLock()
	for mid, m := range b.s.machines {
		if b.gone[mid] {
			continue
		}
		if d, ok := b.dirty[mid]; ok {
			m = d
		}
		consider(m)
	}
	for mid, m := range b.dirty {
		if _, ok := b.s.machines[mid]; !ok {
			consider(m)
		}
	}
	b.s.mu.RUnlock()
	if best == nil {
		return names.Delete(k)
	}
	return names.Put(k, []byte(best.ID))
}

// activeLogin is the login hash a technician record can still log in
// with, or "".
func activeLogin(t *TechnicianRecord) string {
	if t == nil || !t.exists() || t.LoginUsed {
		return ""
	}
	return t.LoginHash
}

func liveKeys(t *TechnicianRecord) []string {
	if t == nil || !t.exists() {
		return nil
	}
	return t.Keys
}

// reindexTechnician updates the logins and techkeys buckets for a
// technician record replaced by another from a broker (old or new may be
// nil: unknown, or forgotten).
func (b *batch) reindexTechnician(old, new *TechnicianRecord) error {
	name := ""
	if old != nil {
		name = old.Name
	} else if new != nil {
		name = new.Name
	}
	logins, techkeys := b.tx.Bucket(bktLogins), b.tx.Bucket(bktTechKeys)
	if h := activeLogin(old); h != "" && h != activeLogin(new) && string(logins.Get([]byte(h))) == name {
		if err := logins.Delete([]byte(h)); err != nil {
			return err
		}
	}
	if h := activeLogin(new); h != "" {
		if cur := logins.Get([]byte(h)); cur == nil || name < string(cur) {
			if err := logins.Put([]byte(h), []byte(name)); err != nil {
				return err
			}
		}
	}
	oldKeys, newKeys := liveKeys(old), liveKeys(new)
	for _, k := range newKeys {
		if cur := techkeys.Get([]byte(k)); cur == nil || name < string(cur) {
			if err := techkeys.Put([]byte(k), []byte(name)); err != nil {
				return err
			}
		}
	}
	for _, k := range oldKeys {
		if slices.Contains(newKeys, k) || string(techkeys.Get([]byte(k))) != name {
			continue
		}
		holder, err := b.keyHolder(k, name)
		if err != nil {
			return err
		}
		if holder == "" {
			err = techkeys.Delete([]byte(k))
		} else {
			err = techkeys.Put([]byte(k), []byte(holder))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// keyHolder returns the smallest name of an existing technician other than
// except that has key, or "".
func (b *batch) keyHolder(key, except string) (string, error) {
	holder := ""
	err := b.tx.Bucket(bktTechnicians).ForEach(func(k, v []byte) error {
		if string(k) == except || holder != "" && string(k) > holder {
			return nil
		}
		var t TechnicianRecord
		if err := json.Unmarshal(v, &t); err != nil {
			return err
		}
		if t.exists() && slices.Contains(t.Keys, key) {
			holder = t.Name
		}
		return nil
	})
	return holder, err
}

// equalJSON reports whether a and b encode to the same JSON.
func equalJSON(a, b any) bool {
	ra, err1 := json.Marshal(a)
	rb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ra, rb)
}
