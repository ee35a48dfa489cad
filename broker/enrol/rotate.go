package enrol

import (
	"crypto/subtle"
	"fmt"
	"path/filepath"
	"time"

	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/atomicfile"
	"github.com/readymesh/readymesh/peer/wire"
)

// Rotating the admin credential. A credential that may have left with
// somebody is replaced in two steps: the broker's file gets a new secret
// (the old one logs in nowhere from then on), and the admin technician
// starts a new incarnation without keys (store.RotateAdmin), which
// replicates: every key that logged in as admin, on any broker, with any
// broker's credential, is signed out, and each broker ends what those
// keys hold open. Admins log in again with a current credential.
//
// The file is written first. If the store write then fails, the old
// secret is already dead and the error says that the keys were not
// signed out; running the rotation again finishes it.

// Rotator is the part of the store a rotation writes.
type Rotator interface {
	RotateAdmin(hash, by string, now time.Time) ([]string, error)
}

// Rotation is what a rotation did.
type Rotation struct {
	// Path is the new credential's file.
	Path string
	// SignedOut are the admin keys signed out, on every broker.
	SignedOut []string
	// hash is the new credential's hash.
	hash string
}

// Rotate writes a new admin credential for broker self into dataDir and
// records it in st, signing out every admin key; by names who rotated,
// for the records and the audit log. A running broker rotates through
// Admission.RotateAdmin instead, which also takes the new credential for
// its logins at once; Rotate alone serves a stopped broker's store.
func Rotate(dataDir string, self wire.BrokerInfo, st Rotator, by string, now time.Time) (Rotation, error) {
	path := filepath.Join(dataDir, CredentialFile)
	tok := wire.Token{Kind: wire.KindLogin, Secret: wire.NewSecret(), Broker: self}
	if err := atomicfile.Write(path, []byte(tok.String()+"\n"), 0o600); err != nil {
		return Rotation{}, fmt.Errorf("rotate the admin credential: %w", err)
	}
	r := Rotation{Path: path, hash: wire.HashSecret(tok.Secret)}
	keys, err := st.RotateAdmin(r.hash, by, now)
	if err != nil {
		return r, fmt.Errorf("rotate the admin credential: the new one is in %s and the old one no longer logs in here, but signing out the admin keys failed (run the rotation again): %w", path, err)
	}
	r.SignedOut = keys
	return r, nil
}

// RotateAdmin rotates this broker's admin credential while it serves: the
// new one logs in here from the moment the file is written, the old one
// never again, and the signing out reaches the other brokers as a
// replicated record.
func (a *Admission) RotateAdmin(by string) (Rotation, error) {
	a.rotating.Lock()
	defer a.rotating.Unlock()
	r, err := Rotate(a.cfg.DataDir, a.self.Info(), a.store, by, a.cfg.Now())
	if r.hash != "" {
		a.adminHash.Store(&r.hash)
	}
	if err != nil {
		a.cfg.Logger.Error("admin credential rotation", "err", err, "by", by)
		return r, err
	}
	a.repl.Written(store.Key{Kind: store.KindAdmin, ID: store.AdminName},
		store.Key{Kind: store.KindTechnician, ID: store.AdminName})
	a.cfg.Logger.Warn("admin credential rotated: every admin key is signed out", "by", by,
		"path", r.Path, "keys_signed_out", len(r.SignedOut))
	return r, nil
}

// isAdmin reports whether hash is the hash of this broker's current admin
// credential.
func (a *Admission) isAdmin(hash string) bool {
	cur := a.adminHash.Load()
	return cur != nil && subtle.ConstantTimeCompare([]byte(hash), []byte(*cur)) == 1
}
