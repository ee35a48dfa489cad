package store

import (
	"encoding/json"
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// downgrade rewrites a closed store's file in the schema 1 layout: what
// a broker before replication wrote.
func downgrade(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		conv := func(bucket []byte, fn func(raw []byte) any) {
			rewriteEach(tx, bucket, func(raw []byte) (any, error) { return fn(raw), nil })
		}
		conv(bktClients, func(raw []byte) any {
			var c ClientRecord
			json.Unmarshal(raw, &c)
			return wire.Client{Name: c.Name, CreatedAt: c.CreatedAt}
		})
		conv(bktTokens, func(raw []byte) any {
			var r TokenRecord
			json.Unmarshal(raw, &r)
			return r.Token
		})
		conv(bktTechnicians, func(raw []byte) any {
			var r TechnicianRecord
			json.Unmarshal(raw, &r)
			return r.Technician
		})
		conv(bktMachines, func(raw []byte) any {
			var m Machine
			json.Unmarshal(raw, &m)
			if m.LastCheckIn != nil {
				m.LastCheckIn.Digest = ""
			}
			m.HistoryHash = 0
			return m
		})
		meta := tx.Bucket(bktMeta)
		var a AdminRecord
		getJSON(meta, keyAdmin, &a)
		meta.Delete(keyAdmin)
		meta.Put(keyAdminHash, []byte(a.Hash))
		return meta.Put(keySchema, []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A schema 1 file opens as schema 2 with the same contents: the machine
// records get back exactly the digests and history hashes the store
// computes, tokens keep their uses left, a used login stays used.
func TestMigrateSchema1(t *testing.T) {
	b := newBroker(t, "east", 3)
	seedFleet(t, b.Store, []string{"m1", "m2"}, 5)
	alice := mustTechnician(t, b.Store, "alice")
	mustLogin(t, b.Store, alice, "12D3KooWalice")
	bob := mustTechnician(t, b.Store, "bob")
	tok := mustToken(t, b.Store, "acme", 3, t0.Add(1e12))
	mustEnroll(t, b.Store, tok, "m3", "web3")
	if err := b.SetAdminHash(wire.HashSecret("admin"), t0); err != nil {
		t.Fatal(err)
	}
	machines := map[string]Machine{}
	for _, m := range b.Machines() {
		machines[m.ID] = m
	}
	techs, _ := b.Technicians()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	downgrade(t, b.cfg.Path)

	b.reopen(t)
	for id, want := range machines {
		if got, _ := b.Machine(id); !sameJSON(got, want) {
			t.Errorf("machine %s after migration:\n%s\nwant\n%s", id, jsonOf(got), jsonOf(want))
		}
	}
	if got, _ := b.Technicians(); !sameJSON(got, techs) {
		t.Errorf("Technicians after migration = %s, want %s", jsonOf(got), jsonOf(techs))
	}
	if tk, err := b.Token(tok); err != nil || tk.UsesLeft != 2 || tk.Uses != 3 {
		t.Errorf("Token after migration = %+v, %v; want 2 of 3 left", tk, err)
	}
	if b.AdminHash() != wire.HashSecret("admin") {
		t.Error("admin hash lost")
	}
	if _, err := b.Login(alice, "12D3KooWother", false, t0); !errors.Is(err, ErrTokenUnknown) {
		t.Errorf("alice's used login = %v, want ErrTokenUnknown", err)
	}
	if _, err := b.Login(bob, "12D3KooWbob", false, t0); err != nil {
		t.Errorf("bob's unused login: %v", err)
	}
	// Every record passes validation, so it can be exported to and
	// imported by another broker.
	other := newBroker(t, "west", 3)
	pull(t, other.Store, b.Store)
	assertConverged(t, b.Store, other.Store)
	d := b.Digest()
	b.reopen(t)
	if b.Digest() != d {
		t.Error("digest changed on the second open")
	}
}
