// Package identity keeps the ed25519 key that is a mesh member's identity.
//
// In readymesh a broker, an agent and a technician are each one key: its
// libp2p peer ID is the machine ID, technician key ID or broker ID that every
// record and every connection refers to. There are no other account
// identifiers to leak or guess, and the bridge authenticates both ends by key.
//
// The key file holds the private key in libp2p's protobuf encoding and must be
// readable only by its owner. Like ssh, Load refuses a key file that others can
// read rather than silently using a key that may have been copied.
package identity

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrInsecureKey is returned when a key file is readable or writable by
// anyone but its owner.
var ErrInsecureKey = errors.New("identity: key file permissions are too open")

// Key is a loaded identity.
type Key struct {
	Priv crypto.PrivKey
	ID   peer.ID
}

// Load reads the key at path. It fails if anyone but the file's owner
// (and, on Windows, SYSTEM and Administrators) may read or write it: its
// mode on Unix, its access control list on Windows.
func Load(path string) (*Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, err
	}
	raw, err := readKey(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	priv, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("identity: %s is not a key file: %w", path, err)
	}
	if priv.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("identity: %s holds a %v key; readymesh uses ed25519", path, priv.Type())
	}
	return fromPriv(priv)
}

// LoadOrCreate loads the key at path, creating a new ed25519 key (and its
// directory, mode 0700) when the file does not exist.
func LoadOrCreate(path string) (k *Key, created bool, err error) {
	k, err = Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("identity: generate: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return nil, false, fmt.Errorf("identity: encode: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	// Write a complete, synced key under a temporary name, then link it
	// into place: the key file never exists half-written, even after a
	// crash, and when two processes race only the first link wins; the
	// loser loads the winner's key.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := writeSynced(tmp, raw); err != nil {
		return nil, false, fmt.Errorf("identity: write %s: %w", tmp.Name(), err)
	}
	if err := makePrivate(tmp.Name()); err != nil {
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			k, err := Load(path)
			return k, false, err
		}
		return nil, false, fmt.Errorf("identity: %w", err)
	}
	k, err = fromPriv(priv)
	return k, true, err
}

func fromPriv(priv crypto.PrivKey) (*Key, error) {
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("identity: peer ID: %w", err)
	}
	return &Key{Priv: priv, ID: id}, nil
}

// writeSynced writes raw to f (created 0600 by os.CreateTemp), syncs and
// closes it.
func writeSynced(f *os.File, raw []byte) error {
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
