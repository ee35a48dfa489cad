package store

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Reading and writing control records (clients, tokens, technicians, the
// admin credential, jobs, policies…) by key, the same way for local
// writes, imports, exports and loading the index.

// controlPlace is the bucket and key a control record is stored under.
func controlPlace(k Key) (bucket, key []byte) {
	switch k.Kind {
	case KindClient:
		return bktClients, []byte(k.ID)
	case KindToken:
		return bktTokens, []byte(k.ID)
	case KindTechnician:
		return bktTechnicians, []byte(k.ID)
	case KindAdmin:
		return bktMeta, keyAdmin
	case KindJob:
		return bktJobs, []byte(k.ID)
	case KindRemoval:
		return bktRemovals, []byte(k.ID)
	case KindRelease:
		return bktReleases, []byte(k.ID)
	case KindReleaseKey:
		return bktMeta, keyReleaseKey
	case KindRollout:
		return bktRollouts, []byte(k.ID)
	case KindPolicy:
		return bktPolicies, []byte(k.ID)
	}
	panic("store: not a control record: " + k.String())
}

// newControl returns an empty record of a control kind, as a pointer.
func newControl(kind Kind) any {
	switch kind {
	case KindClient:
		return new(ClientRecord)
	case KindToken:
		return new(TokenRecord)
	case KindTechnician:
		return new(TechnicianRecord)
	case KindAdmin:
		return new(AdminRecord)
	case KindJob:
		return new(JobRecord)
	case KindRemoval:
		return new(RemovalRecord)
	case KindRelease:
		return new(ReleaseRecord)
	case KindReleaseKey:
		return new(ReleaseKeyRecord)
	case KindRollout:
		return new(RolloutRecord)
	case KindPolicy:
		return new(PolicyRecord)
	}
	panic("store: not a control kind: " + string(kind))
}

// controlVersion is the version of a control record stored under k. Sum
// hashes the record's last-writer-wins content, its incarnation and its
// grow-only parts.
func controlVersion(k Key, rec any) Version {
	st := stampOf(rec)
	v := Version{Key: k, Clock: st.Clock, Deleted: st.Deleted}
	var x hasher
	x.write(lwwContent(rec))
	x.clock(st.Born)
	switch r := rec.(type) {
	case *TokenRecord:
		for _, b := range slices.Sorted(maps.Keys(r.Spent)) {
			x.str(b)
			x.u64(uint64(r.Spent[b]))
		}
	case *TechnicianRecord:
		x.bool(r.LoginUsed)
		for _, k := range r.Keys { // sorted
			x.str(k)
		}
	}
	v.Sum = x.sum()
	return v
}

// lwwContent is the JSON of a control record without its grow-only parts
// (token use counts; technician keys and login use, with the login hash
// that a used login clears): the part the later clock wins.
func lwwContent(rec any) []byte {
	switch r := rec.(type) {
	case *TokenRecord:
		c := *r
		c.Spent, c.UsesLeft = nil, 0
		rec = &c
	case *TechnicianRecord:
		c := *r
		c.Keys, c.LoginUsed, c.LoginHash = nil, false, ""
		rec = &c
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		panic(fmt.Sprintf("store: encode %T: %v", rec, err))
	}
	return raw
}

func stampOf(rec any) Stamp {
	switch r := rec.(type) {
	case *ClientRecord:
		return r.Stamp
	case *TokenRecord:
		return r.Stamp
	case *TechnicianRecord:
		return r.Stamp
	case *AdminRecord:
		return r.Stamp
	case *JobRecord:
		return r.Stamp
	case *RemovalRecord:
		return r.Stamp
	case *ReleaseRecord:
		return r.Stamp
	case *ReleaseKeyRecord:
		return r.Stamp
	case *RolloutRecord:
		return r.Stamp
	case *PolicyRecord:
		return r.Stamp
	}
	panic(fmt.Sprintf("store: not a control record: %T", rec))
}

// getControl reads the control record stored under k, as a pointer.
func getControl(tx *bolt.Tx, k Key) (any, bool, error) {
	bucket, key := controlPlace(k)
	rec := newControl(k.Kind)
	found, err := getJSON(tx.Bucket(bucket), key, rec)
	return rec, found, err
}

// forEachControl calls fn for every stored control record.
func forEachControl(tx *bolt.Tx, fn func(k Key, rec any, v Version) error) error {
	for _, kind := range []Kind{KindClient, KindToken, KindTechnician, KindJob, KindRemoval, KindRelease, KindRollout, KindPolicy} {
		bucket, _ := controlPlace(Key{Kind: kind})
		err := tx.Bucket(bucket).ForEach(func(id, raw []byte) error {
			k := Key{Kind: kind, ID: string(id)}
			rec := newControl(kind)
			if err := json.Unmarshal(raw, rec); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			return fn(k, rec, controlVersion(k, rec))
		})
		if err != nil {
			return err
		}
	}
	for _, k := range []Key{{Kind: KindAdmin, ID: AdminName}, {Kind: KindReleaseKey, ID: FleetKeyName}} {
		rec, found, err := getControl(tx, k)
		if err != nil {
			return err
		}
		if found {
			if err := fn(k, rec, controlVersion(k, rec)); err != nil {
				return err
			}
		}
	}
	return nil
}

// putControl writes a control record in the batch and notes its new
// version for the index.
func (b *batch) putControl(k Key, rec any) error {
	bucket, key := controlPlace(k)
	if err := putJSON(b.tx.Bucket(bucket), key, rec); err != nil {
		return err
	}
	v := controlVersion(k, rec)
	b.ctl[k] = &v
	if k.Kind == KindReleaseKey || k.Kind == KindRelease && namesNextKey(rec.(*ReleaseRecord)) {
		b.ring = nil // the keys, or what the walk finds, changed
	}
	if k.Kind == KindPolicy {
		b.notePolicy(k.ID, rec.(*PolicyRecord))
	}
	return nil
}

// deleteControl removes a control record (an expired tombstone).
func (b *batch) deleteControl(k Key) error {
	bucket, key := controlPlace(k)
	if err := b.tx.Bucket(bucket).Delete(key); err != nil {
		return err
	}
	b.ctl[k] = nil
	if k.Kind == KindPolicy {
		b.notePolicy(k.ID, nil)
	}
	return nil
}

// client, token, technician and admin read one record as of the batch.

func (b *batch) client(name string) (*ClientRecord, bool, error) {
	rec, found, err := getControl(b.tx, Key{KindClient, name})
	return rec.(*ClientRecord), found, err
}

func (b *batch) clientExists(name string) (bool, error) {
	c, found, err := b.client(name)
	return found && c.exists(), err
}

func (b *batch) token(hash string) (*TokenRecord, bool, error) {
	rec, found, err := getControl(b.tx, Key{KindToken, hash})
	return rec.(*TokenRecord), found, err
}

func (b *batch) technician(name string) (*TechnicianRecord, bool, error) {
	rec, found, err := getControl(b.tx, Key{KindTechnician, name})
	return rec.(*TechnicianRecord), found, err
}

func (b *batch) admin() (*AdminRecord, bool, error) {
	rec, found, err := getControl(b.tx, Key{KindAdmin, AdminName})
	return rec.(*AdminRecord), found, err
}

// stamp is the stamp of a record created now.
func (b *batch) stamp() Stamp {
	c := b.s.clock.tick()
	return Stamp{Born: c, Clock: c}
}
