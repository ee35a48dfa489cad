package fleettest

import (
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// Open opens a real store in tb's temporary directory, closed when tb
// ends. The rooms' unit tests run on it.
func Open(tb testing.TB) *store.Store {
	tb.Helper()
	st, err := store.Open(store.Config{Path: filepath.Join(tb.TempDir(), "broker.db")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// Enrol enrols machine id as client/name at now, creating the client if
// it does not exist, with a one-use token as an agent's enrolment has.
func Enrol(tb testing.TB, st *store.Store, id, client, name string, now time.Time) store.Machine {
	tb.Helper()
	if !st.ClientExists(client) {
		if _, err := st.CreateClient(client, now); err != nil {
			tb.Fatal(err)
		}
	}
	hash := wire.HashSecret(wire.NewSecret())
	if err := st.CreateToken(hash, store.Token{Client: client, Uses: 1, UsesLeft: 1, ExpiresAt: now.Add(time.Hour), CreatedAt: now}); err != nil {
		tb.Fatal(err)
	}
	m, err := st.Enroll(store.EnrollRequest{TokenHash: hash, MachineID: id, Name: name, Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// PeerID returns a fresh peer ID, as an agent's or technician's key has.
func PeerID(tb testing.TB) peer.ID {
	tb.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}
