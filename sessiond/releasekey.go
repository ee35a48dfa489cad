package sessiond

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/sessiond/localdb"
)

// The release key an agent pins decides which updates it installs, so it
// is set only at the machine: from the enrolment token, by `sessiond
// trust-release-key` (as the agent's owner or an administrator), or moved
// on by a release signed with it that names its successor. No broker can
// set it.

// KeyChange is what TrustReleaseKey did.
type KeyChange struct {
	Key        string `json:"key"`                   // the key pinned now
	KeyID      string `json:"key_id"`                // its ID
	PreviousID string `json:"previous_id,omitempty"` // the ID of the key it replaced
	Changed    bool   `json:"changed"`               // false: the key was pinned already
}

// ErrOtherKeyPinned refuses to replace a pinned release key without the
// explicit replace.
var ErrOtherKeyPinned = errors.New("another release key is pinned")

// TrustReleaseKey pins key (a minisign public key: its "RW…" line or a
// .pub file's text) as the release key of the agent in stateDir: in its
// database when no agent runs there, else through the running agent's
// control channel (the database is its own then). A different key
// already pinned is replaced only with replace.
func TrustReleaseKey(ctx context.Context, stateDir, key string, replace bool) (KeyChange, error) {
	key, err := canonicalKey(key)
	if err != nil {
		return KeyChange{}, err
	}
	if key == "" {
		return KeyChange{}, errors.New("trust-release-key: no key given")
	}
	path := filepath.Join(stateDir, DBFile)
	if _, err := os.Stat(path); err != nil {
		return KeyChange{}, fmt.Errorf("trust-release-key: %s is not an enrolled agent's state directory: %w", stateDir, err)
	}
	db, err := localdb.Open(path)
	if errors.Is(err, localdb.ErrLocked) {
		return trustByControl(ctx, stateDir, key, replace)
	}
	if err != nil {
		return KeyChange{}, fmt.Errorf("trust-release-key: %w", err)
	}
	defer db.Close()
	return pinKey(db, key, replace, nil)
}

// trustByControl asks the agent running on stateDir to pin key.
func trustByControl(ctx context.Context, stateDir, key string, replace bool) (KeyChange, error) {
	r, err := control(ctx, stateDir, controlRequest{Op: "trust-release-key", Arg: key, Replace: replace})
	if err != nil {
		return KeyChange{}, fmt.Errorf("trust-release-key: %w", err)
	}
	if r.Key == nil {
		return KeyChange{}, errors.New("trust-release-key: the running agent did not say what it pinned")
	}
	return *r.Key, nil
}

// pinKey pins key (canonical) in db and logs a change to log (nil: not
// logged).
func pinKey(db *localdb.DB, key string, replace bool, log *slog.Logger) (KeyChange, error) {
	var ch KeyChange
	var refused error
	_, err := db.EditEnrolment(func(e *localdb.Enrolment) {
		ch = KeyChange{Key: key, KeyID: keyID(key)}
		switch {
		case e.ReleaseKey == key:
			return
		case e.ReleaseKey != "" && !replace:
			refused = fmt.Errorf("%w (ID %s); pass --replace to pin %s instead", ErrOtherKeyPinned, keyID(e.ReleaseKey), ch.KeyID)
			return
		}
		ch.PreviousID, ch.Changed = keyID(e.ReleaseKey), e.ReleaseKey != key
		e.ReleaseKey = key
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return KeyChange{}, fmt.Errorf("trust-release-key: %w", err)
	}
	if log != nil && ch.Changed {
		log.Warn("release key pinned at the machine", "key_id", ch.KeyID, "replaced", ch.PreviousID)
	}
	return ch, nil
}

// canonicalKey parses a release public key and returns its base64 line;
// "" stays "".
func canonicalKey(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	k, err := release.ParsePublicKey(s)
	if err != nil {
		return "", err
	}
	return k.String(), nil
}

// keyID returns the ID of a pinned key, or "" for none (or one that
// cannot be read, which canonicalKey never stores).
func keyID(key string) string {
	if key == "" {
		return ""
	}
	k, err := release.ParsePublicKey(key)
	if err != nil {
		return ""
	}
	return k.ID()
}
