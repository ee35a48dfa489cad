package localdb

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bktGrants maps a used grant's session ID to its expiry (RFC 3339).
var bktGrants = []byte("grants")

// ErrGrantUsed is returned by MarkGrantUsed for a grant seen before.
var ErrGrantUsed = errors.New("grant was already used")

// MarkGrantUsed records that the session grant with this ID was used, and
// refuses one used before: grants are single use even across an agent
// restart. Records of expired grants are dropped on the way.
func (d *DB) MarkGrantUsed(session string, expires time.Time) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktGrants)
		if err != nil {
			return err
		}
		if b.Get([]byte(session)) != nil {
			return fmt.Errorf("%w: session %s", ErrGrantUsed, session)
		}
		dropExpired(b, time.Now())
		v, _ := expires.UTC().MarshalText()
		return b.Put([]byte(session), v)
	})
}

// dropExpired deletes the records of grants that expired before now: they
// can no longer be presented, so there is nothing to refuse.
func dropExpired(b *bolt.Bucket, now time.Time) {
	var stale [][]byte
	b.ForEach(func(k, v []byte) error {
		var t time.Time
		if t.UnmarshalText(v) == nil && now.After(t) {
			stale = append(stale, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range stale {
		b.Delete(k)
	}
}
