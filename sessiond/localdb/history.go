package localdb

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

var keyHistory = []byte("history")

// History is the agent's record of live sessions and the commands they ran,
// newest last, bounded: the next check-in summarises it into readiness.
type History struct {
	Commands []wire.CommandRecord `json:"commands"`
	Sessions []wire.SessionRecord `json:"sessions"`
}

// History bounds.
const (
	MaxCommands = 100
	MaxSessions = 50
)

// AddCommand appends a command to the history.
func (d *DB) AddCommand(c wire.CommandRecord) error {
	return d.editHistory(func(h *History) {
		h.Commands = append(h.Commands, c)
		if len(h.Commands) > MaxCommands {
			h.Commands = h.Commands[len(h.Commands)-MaxCommands:]
		}
	})
}

// AddSession appends an ended session to the history.
func (d *DB) AddSession(r wire.SessionRecord) error {
	return d.editHistory(func(h *History) {
		h.Sessions = append(h.Sessions, r)
		if len(h.Sessions) > MaxSessions {
			h.Sessions = h.Sessions[len(h.Sessions)-MaxSessions:]
		}
	})
}

// History returns the session and command history.
func (d *DB) History() (History, error) {
	var h History
	_, err := d.get(keyHistory, &h)
	return h, err
}

// editHistory reads, changes and writes the history in one transaction.
func (d *DB) editHistory(f func(*History)) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bkt)
		var h History
		if raw := b.Get(keyHistory); raw != nil {
			if err := json.Unmarshal(raw, &h); err != nil {
				return fmt.Errorf("localdb: history: %w", err)
			}
		}
		f(&h)
		raw, err := json.Marshal(h)
		if err != nil {
			return err
		}
		return b.Put(keyHistory, raw)
	})
}
