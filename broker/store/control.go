package store

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// CreateClient stores a new client.
func (s *Store) CreateClient(name string, now time.Time) (wire.Client, error) {
	c := wire.Client{Name: name, CreatedAt: now.UTC()}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktClients)
		if b.Get([]byte(name)) != nil {
			return fmt.Errorf("client %q: %w", name, ErrExists)
		}
		return putJSON(b, []byte(name), c)
	})
	return c, err
}

// Clients lists clients by name with their machine counts.
func (s *Store) Clients() ([]wire.Client, error) {
	var out []wire.Client
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktClients).ForEach(func(k, v []byte) error {
			var c wire.Client
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("client %s: %w", k, err)
			}
			out = append(out, c)
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

// ClientExists reports whether a client is stored.
func (s *Store) ClientExists(name string) bool {
	var ok bool
	s.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bktClients).Get([]byte(name)) != nil
		return nil
	})
	return ok
}

// CreateToken stores an enrolment token under the hash of its secret. The
// client must exist.
func (s *Store) CreateToken(hash string, t Token) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bktClients).Get([]byte(t.Client)) == nil {
			return fmt.Errorf("client %q: %w", t.Client, ErrNotFound)
		}
		b := tx.Bucket(bktTokens)
		if b.Get([]byte(hash)) != nil {
			return fmt.Errorf("token: %w", ErrExists)
		}
		return putJSON(b, []byte(hash), t)
	})
}

// Token returns a stored token by the hash of its secret.
func (s *Store) Token(hash string) (Token, error) {
	var t Token
	err := s.db.View(func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bktTokens), []byte(hash), &t)
		if err == nil && !ok {
			err = ErrTokenUnknown
		}
		return err
	})
	return t, err
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
		t, err := enrollable(b, r)
		if err != nil {
			return err
		}
		if t == nil { // the idempotent retry
			old, _ := b.machine(r.MachineID)
			m = *old
			return nil
		}
		t.UsesLeft--
		if err := putJSON(b.tx.Bucket(bktTokens), []byte(r.TokenHash), t); err != nil {
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
func enrollable(b *batch, r EnrollRequest) (*Token, error) {
	t := new(Token)
	ok, err := getJSON(b.tx.Bucket(bktTokens), []byte(r.TokenHash), t)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, refuse(ErrTokenUnknown)
	}
	if m, found := b.machine(r.MachineID); found {
		if m.Name == r.Name && m.Client == t.Client {
			return nil, nil
		}
		return nil, refuse(fmt.Errorf("machine %s is enrolled as %s/%s: %w", r.MachineID, m.Client, m.Name, ErrExists))
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
