package store

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// CreateClient stores a new client. A deleted client (a tombstone) may be
// created again.
func (s *Store) CreateClient(name string, now time.Time) (wire.Client, error) {
	c := wire.Client{Name: name, CreatedAt: now.UTC()}
	err := s.write(func(b *batch) error {
		if err := wire.ValidName("client name", name); err != nil {
			return refuse(fmt.Errorf("%w: %v", ErrMalformed, err))
		}
		switch exists, err := b.clientExists(name); {
		case err != nil:
			return err
		case exists:
			return refuse(fmt.Errorf("client %q: %w", name, ErrExists))
		}
		rec := &ClientRecord{Name: name, CreatedAt: c.CreatedAt, Stamp: b.stamp()}
		return b.putControl(Key{KindClient, name}, rec)
	})
	return c, err
}

// Clients lists clients by name with their machine counts.
func (s *Store) Clients() ([]wire.Client, error) {
	var out []wire.Client
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktClients).ForEach(func(k, v []byte) error {
			var c ClientRecord
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("client %s: %w", k, err)
			}
			if c.exists() {
				out = append(out, wire.Client{Name: c.Name, CreatedAt: c.CreatedAt})
			}
			return nil
		})
	})
	counts := map[string]int{}
	s.mu.RLock()
	for _, m := range s.machines {
		counts[m.Client]++
	}
	s.mu.RUnlock()
	for i := range out {
		out[i].Machines = counts[out[i].Name]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// ClientExists reports whether a client is stored (and not deleted).
func (s *Store) ClientExists(name string) bool {
	var c ClientRecord
	var found bool
	s.db.View(func(tx *bolt.Tx) error {
		found, _ = getJSON(tx.Bucket(bktClients), []byte(name), &c)
		return nil
	})
	return found && c.exists()
}

// CreateToken stores an enrolment token under the hash of its secret. The
// client must exist. Uses is the number of uses granted; uses already
// spent (UsesLeft below Uses) count as spent on this broker.
func (s *Store) CreateToken(hash string, t Token) error {
	return s.write(func(b *batch) error {
		switch exists, err := b.clientExists(t.Client); {
		case err != nil:
			return err
		case !exists:
			return refuse(fmt.Errorf("client %q: %w", t.Client, ErrNotFound))
		}
		switch old, found, err := b.token(hash); {
		case err != nil:
			return err
		case found && old.exists():
			return refuse(fmt.Errorf("token: %w", ErrExists))
		}
		if t.UsesLeft > t.Uses {
			return refuse(fmt.Errorf("%w: token has %d uses left of %d", ErrMalformed, t.UsesLeft, t.Uses))
		}
		rec := &TokenRecord{Token: t, Stamp: b.stamp()}
		if spent := t.Uses - t.UsesLeft; spent > 0 {
			rec.Spent = map[string]int{b.s.name: spent}
		}
		rec.settle()
		if err := validID("token hash", hash); err != nil {
			return refuse(fmt.Errorf("%w: %v", ErrMalformed, err))
		}
		if err := rec.check(); err != nil {
			return refuse(fmt.Errorf("%w: token: %v", ErrMalformed, err))
		}
		return b.putControl(Key{KindToken, hash}, rec)
	})
}

// Token returns a stored token by the hash of its secret. UsesLeft counts
// the uses spent on every broker this one has heard from.
func (s *Store) Token(hash string) (Token, error) {
	var t TokenRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bktTokens), []byte(hash), &t)
		if err == nil && (!ok || !t.exists()) {
			err = ErrTokenUnknown
		}
		return err
	})
	if err != nil {
		return Token{}, err
	}
	return t.Token, nil
}

// EnrollRequest asks to turn a token into a machine record.
type EnrollRequest struct {
	TokenHash string
	MachineID string
	Name      string
	Hostname  string
	Now       time.Time
}

// Enroll consumes one use of a token and creates the machine record, in one
// transaction: a refused enrolment changes nothing. Enrolling the same
// machine ID again with the same name and client succeeds without using the
// token again, so an agent that lost the reply can retry.
func (s *Store) Enroll(r EnrollRequest) (Machine, error) {
	var m Machine
	err := s.write(func(b *batch) error {
		if rm, removed, err := b.removal(r.MachineID); err != nil || removed {
			return cmp.Or(err, refuse(removedError(rm)))
		}
		t, err := enrollable(b, r)
		if err != nil {
			return err
		}
		if t == nil { // the idempotent retry
			old, _ := b.machine(r.MachineID)
			m = *old
			return nil
		}
		if t.Spent == nil {
			t.Spent = map[string]int{}
		}
		t.Spent[b.s.name]++
		t.settle()
		if err := b.putControl(Key{KindToken, r.TokenHash}, t); err != nil {
			return err
		}
		if err := b.tx.Bucket(bktNames).Put(nameKey(t.Client, r.Name), []byte(r.MachineID)); err != nil {
			return err
		}
		nm := &Machine{ID: r.MachineID, Name: r.Name, Client: t.Client, Hostname: r.Hostname, EnrolledAt: r.Now.UTC()}
		if err := b.put(nm); err != nil {
			return err
		}
		m = *nm
		return nil
	})
	if err != nil {
		s.log.Warn("enrolment refused", "machine", r.MachineID, "name", r.Name, "err", err)
		return Machine{}, err
	}
	return m, nil
}

func nameKey(client, name string) []byte { return []byte(client + "\x00" + name) }

// enrollable checks an enrolment without writing. It returns the token to
// consume, nil for an idempotent retry of an earlier enrolment, or a
// refusal.
func enrollable(b *batch, r EnrollRequest) (*TokenRecord, error) {
	t, ok, err := b.token(r.TokenHash)
	switch {
	case err != nil:
		return nil, err
	case !ok || !t.exists():
		return nil, refuse(ErrTokenUnknown)
	}
	if m, found := b.machine(r.MachineID); found {
		if m.Name == r.Name && m.Client == t.Client {
			return nil, nil
		}
		return nil, refuse(fmt.Errorf("machine %s is enrolled as %s/%s: %w", r.MachineID, m.Client, m.Name, ErrExists))
	}
	if err := errors.Join(validID("machine id", r.MachineID), wire.ValidName("machine name", r.Name)); err != nil {
		return nil, refuse(fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	switch {
	case !r.Now.Before(t.ExpiresAt):
		return nil, refuse(fmt.Errorf("%w at %s", ErrTokenExpired, t.ExpiresAt.Format(time.RFC3339)))
	case t.UsesLeft <= 0:
		return nil, refuse(fmt.Errorf("%w (%d of %d)", ErrTokenUsedUp, t.Uses, t.Uses))
	}
	if id := b.tx.Bucket(bktNames).Get(nameKey(t.Client, r.Name)); id != nil {
		return nil, refuse(fmt.Errorf("%q in client %q: %w", r.Name, t.Client, ErrNameTaken))
	}
	return t, nil
}
