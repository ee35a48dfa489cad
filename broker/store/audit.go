package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// AuditLimit is how many audit entries a broker keeps; older ones are
// dropped as new ones arrive.
const AuditLimit = 100_000

// Audit appends an entry to this broker's audit log, committed before it
// returns, and gives it the next sequence number. The log is this
// broker's own record of what it decided (session requests, grants,
// refusals, consent answers, ends, policy changes); it is not replicated.
func (s *Store) Audit(e wire.AuditEntry) error {
	return s.write(func(b *batch) error {
		bk := b.tx.Bucket(bktAudit)
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		raw, err := json.Marshal(e)
		if err != nil {
			return err
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		if err := bk.Put(k[:], raw); err != nil {
			return err
		}
		if seq > AuditLimit {
			binary.BigEndian.PutUint64(k[:], seq-AuditLimit)
			return bk.Delete(k[:])
		}
		return nil
	})
}

// AuditLog returns up to limit entries, newest first, that match keep.
func (s *Store) AuditLog(limit int, keep func(*wire.AuditEntry) bool) ([]wire.AuditEntry, error) {
	out := []wire.AuditEntry{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktAudit).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var e wire.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("audit %x: %w", k, err)
			}
			if keep == nil || keep(&e) {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}

// AuditSince returns the newest audit sequence number and whether an
// entry newer than after passes keep. It reads only the entries newer
// than after, newest first, and stops at the first kept one: a cheap
// "did anything I may see happen" for the console's event streams.
func (s *Store) AuditSince(after uint64, keep func(*wire.AuditEntry) bool) (newest uint64, found bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktAudit).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			seq := binary.BigEndian.Uint64(k)
			if newest == 0 {
				newest = seq
			}
			if seq <= after {
				return nil
			}
			var e wire.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("audit %x: %w", k, err)
			}
			if keep == nil || keep(&e) {
				found = true
				return nil
			}
		}
		return nil
	})
	return newest, found, err
}

// TranscriptLimit is how many transcripts a broker keeps, and
// TranscriptsPerMachine how many of one machine; the oldest go first.
const (
	TranscriptLimit       = 10_000
	TranscriptsPerMachine = 200
)

// PutTranscript stores a session's transcript under its machine,
// committed before it returns. Like the audit log it stays on the broker
// that received it.
func (s *Store) PutTranscript(t wire.Transcript) error {
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	key := []byte(t.Machine + "/" + t.Session + "/" + t.Name)
	return s.write(func(b *batch) error {
		casts, order := b.tx.Bucket(bktCasts), b.tx.Bucket(bktCastOrder)
		if casts.Get(key) == nil {
			// Make room: the machine's oldest first, then anyone's.
			prefix := []byte(t.Machine + "/")
			mine := 0
			c := casts.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				mine++
			}
			total := casts.Stats().KeyN
			var drop [][2][]byte // order key, transcript key
			oc := order.Cursor()
			for k, v := oc.First(); k != nil && (mine >= TranscriptsPerMachine || total >= TranscriptLimit); k, v = oc.Next() {
				if total < TranscriptLimit && !bytes.HasPrefix(v, prefix) {
					continue
				}
				if bytes.HasPrefix(v, prefix) {
					mine--
				}
				total--
				drop = append(drop, [2][]byte{append([]byte(nil), k...), append([]byte(nil), v...)})
			}
			for _, d := range drop {
				casts.Delete(d[1])
				order.Delete(d[0])
			}
			seq, err := order.NextSequence()
			if err != nil {
				return err
			}
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], seq)
			if err := order.Put(k[:], key); err != nil {
				return err
			}
		}
		return casts.Put(key, raw)
	})
}

// Transcripts returns the transcripts of sessions whose ID starts with
// prefix.
func (s *Store) Transcripts(prefix string) ([]wire.Transcript, error) {
	var out []wire.Transcript
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktCasts).ForEach(func(k, v []byte) error {
			parts := strings.SplitN(string(k), "/", 3)
			if len(parts) != 3 || !strings.HasPrefix(parts[1], prefix) {
				return nil
			}
			var t wire.Transcript
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("transcript %s: %w", k, err)
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}
