// Package spool is the agent's local durable state, one bbolt file in the
// agent's state directory: its enrolment, the check-in sequence counter and
// what it last told the broker.
//
// The sequence number must survive restarts and never be reused for
// different content: the broker uses it to tell a retried check-in (same
// number, same content: acknowledged again, stored once) from a new one. So
// the counter is advanced and committed before a check-in is sent.
package spool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/readymesh/readymesh/peer/wire"
)

var (
	bkt         = []byte("agent")
	keyEnrolled = []byte("enrolment")
	keySeq      = []byte("seq")
	keyLast     = []byte("last_check_in")
)

// ErrNotEnrolled is returned by Enrolment before the agent is enrolled.
var ErrNotEnrolled = errors.New("this agent is not enrolled; run sessiond enroll first")

// Enrolment is what the agent learned when it enrolled.
type Enrolment struct {
	MachineID  string            `json:"machine_id"`
	Name       string            `json:"name"`
	Client     string            `json:"client"`
	Broker     wire.BrokerInfo   `json:"broker"`
	Brokers    []wire.BrokerInfo `json:"brokers,omitempty"` // learned later, for failover
	EnrolledAt time.Time         `json:"enrolled_at"`
}

// LastCheckIn is the newest acknowledged check-in.
type LastCheckIn struct {
	Seq    uint64    `json:"seq"`
	BootID string    `json:"boot_id"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Spool is the agent's local store.
type Spool struct {
	db *bolt.DB
}

// Open opens or creates the spool file at path.
func Open(path string) (*Spool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("spool: %s is locked: is another sessiond running with this state directory?", path)
		}
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bkt)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("spool: init: %w", err)
	}
	return &Spool{db: db}, nil
}

// Close closes the file.
func (s *Spool) Close() error { return s.db.Close() }

// SetEnrolment stores the enrolment.
func (s *Spool) SetEnrolment(e Enrolment) error {
	return s.put(keyEnrolled, e)
}

// Enrolment returns the stored enrolment or ErrNotEnrolled.
func (s *Spool) Enrolment() (Enrolment, error) {
	var e Enrolment
	ok, err := s.get(keyEnrolled, &e)
	if err == nil && !ok {
		err = ErrNotEnrolled
	}
	return e, err
}

// NextSeq advances the check-in sequence and commits it before returning.
func (s *Spool) NextSeq() (uint64, error) {
	var seq uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bkt)
		if v := b.Get(keySeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		seq++
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		return b.Put(keySeq, k[:])
	})
	if err != nil {
		return 0, fmt.Errorf("spool: next seq: %w", err)
	}
	return seq, nil
}

// SkipTo moves the sequence counter to at least seq, after the broker said
// it already stores seq (for example after the state directory was restored
// from a backup).
func (s *Spool) SkipTo(seq uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bkt)
		if v := b.Get(keySeq); len(v) == 8 && binary.BigEndian.Uint64(v) >= seq {
			return nil
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		return b.Put(keySeq, k[:])
	})
}

// SetLast records the newest acknowledged check-in.
func (s *Spool) SetLast(l LastCheckIn) error { return s.put(keyLast, l) }

// Last returns the newest acknowledged check-in; ok is false if none.
func (s *Spool) Last() (l LastCheckIn, ok bool, err error) {
	ok, err = s.get(keyLast, &l)
	return l, ok, err
}

func (s *Spool) put(key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("spool: encode %s: %w", key, err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bkt).Put(key, raw) }); err != nil {
		return fmt.Errorf("spool: put %s: %w", key, err)
	}
	return nil
}

func (s *Spool) get(key []byte, v any) (bool, error) {
	var raw []byte
	s.db.View(func(tx *bolt.Tx) error {
		raw = append(raw, tx.Bucket(bkt).Get(key)...)
		return nil
	})
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("spool: decode %s: %w", key, err)
	}
	return true, nil
}

var bktGrants = []byte("grants")

// ErrGrantUsed is returned by MarkGrantUsed for a grant seen before.
var ErrGrantUsed = errors.New("grant was already used")

// MarkGrantUsed records that the session grant with this ID was used, and
// refuses one used before: grants are single use even across an agent
// restart. Records of expired grants are dropped on the way.
func (s *Spool) MarkGrantUsed(session string, expires time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktGrants)
		if err != nil {
			return err
		}
		if b.Get([]byte(session)) != nil {
			return fmt.Errorf("%w: session %s", ErrGrantUsed, session)
		}
		now := time.Now()
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
		v, _ := expires.UTC().MarshalText()
		return b.Put([]byte(session), v)
	})
}

var keyConsent = []byte("consent")

// Approval is the last approval given at the machine.
type Approval struct {
	LastApprovedAt *time.Time `json:"last_approved_at,omitempty"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	ApprovedBy     string     `json:"approved_by,omitempty"`
	// Mode is the highest mode approved: a window covers sessions up to it.
	Mode string `json:"mode,omitempty"`
}

// ConsentState is the agent's consent posture.
type ConsentState struct {
	Policy    string   `json:"policy,omitempty"`
	WindowSec int64    `json:"window_s,omitempty"`
	Approval  Approval `json:"approval"`
}

// SetConsent stores the consent posture.
func (s *Spool) SetConsent(c ConsentState) error { return s.put(keyConsent, c) }

// Consent returns the stored consent posture.
func (s *Spool) Consent() (c ConsentState, ok bool, err error) {
	ok, err = s.get(keyConsent, &c)
	return c, ok, err
}

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
func (s *Spool) AddCommand(c wire.CommandRecord) error {
	return s.editHistory(func(h *History) {
		h.Commands = append(h.Commands, c)
		if len(h.Commands) > MaxCommands {
			h.Commands = h.Commands[len(h.Commands)-MaxCommands:]
		}
	})
}

// AddSession appends an ended session to the history.
func (s *Spool) AddSession(r wire.SessionRecord) error {
	return s.editHistory(func(h *History) {
		h.Sessions = append(h.Sessions, r)
		if len(h.Sessions) > MaxSessions {
			h.Sessions = h.Sessions[len(h.Sessions)-MaxSessions:]
		}
	})
}

// History returns the session and command history.
func (s *Spool) History() (History, error) {
	var h History
	_, err := s.get(keyHistory, &h)
	return h, err
}

// editHistory reads, changes and writes the history in one transaction.
func (s *Spool) editHistory(f func(*History)) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bkt)
		var h History
		if raw := b.Get(keyHistory); raw != nil {
			if err := json.Unmarshal(raw, &h); err != nil {
				return fmt.Errorf("spool: history: %w", err)
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

var bktJobs = []byte("jobs")

// JobRun is the agent's record of a queued job it was asked to run.
type JobRun struct {
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	ExitCode int        `json:"exit_code"`
	Output   string     `json:"output,omitempty"`
}

// StartJob records that job id is about to run, committed before it runs.
// If the job was started before, it returns that record and false: the
// caller answers with it instead of running the job again.
func (s *Spool) StartJob(id string, now time.Time) (JobRun, bool, error) {
	var prev JobRun
	first := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktJobs)
		if err != nil {
			return err
		}
		if raw := b.Get([]byte(id)); raw != nil {
			return json.Unmarshal(raw, &prev)
		}
		first = true
		prev = JobRun{Started: now.UTC()}
		raw, _ := json.Marshal(prev)
		return b.Put([]byte(id), raw)
	})
	return prev, first, err
}

// JobRecord returns what the spool holds about job id.
func (s *Spool) JobRecord(id string) (JobRun, bool, error) {
	var r JobRun
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktJobs)
		if b == nil {
			return nil
		}
		raw := b.Get([]byte(id))
		if raw == nil {
			return nil
		}
		found = true
		return json.Unmarshal(raw, &r)
	})
	return r, found, err
}

// FinishJob records how job id ended.
func (s *Spool) FinishJob(id string, r JobRun) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktJobs)
		if err != nil {
			return err
		}
		raw, _ := json.Marshal(r)
		return b.Put([]byte(id), raw)
	})
}
