package localdb

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

var keyAway = []byte("away")

// AwayState is what the agent keeps between runs about being away: the
// fleet's policy for it (a quiet agent must know it while it has no
// bridge), the hash of the package list last sent whole (a quiet
// check-in sends the hash instead when the list is unchanged), and how
// long its last reboot took. (How runs ended is package lastrun's.)
type AwayState struct {
	Policy         wire.AgentPolicy `json:"policy"`
	PackagesSHA256 string           `json:"packages_sha256,omitempty"`
	// RebootSec is how long the machine took to come back from its last
	// announced reboot, as the agent measured it: the expected return of
	// the next one.
	RebootSec int64 `json:"reboot_s,omitempty"`
}

// Away returns the stored away state; the zero value when none is.
func (d *DB) Away() (AwayState, error) {
	var s AwayState
	_, err := d.get(keyAway, &s)
	return s, err
}

// EditAway changes the stored away state with f, in one transaction.
func (d *DB) EditAway(f func(*AwayState)) (AwayState, error) {
	var s AwayState
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bkt)
		if raw := b.Get(keyAway); raw != nil {
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("localdb: decode %s: %w", keyAway, err)
			}
		}
		f(&s)
		raw, err := json.Marshal(s)
		if err != nil {
			return err
		}
		return b.Put(keyAway, raw)
	})
	return s, err
}
