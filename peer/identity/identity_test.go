package identity

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/readymesh/readymesh/integration/testdir"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(testdir.New(t), "state", "nested", "agent.key")
	k, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate: created=%v err=%v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPrivate(path, fi); err != nil {
		t.Errorf("the new key file is not private: %v", err)
	}
	if runtime.GOOS != "windows" { // modes mean nothing there
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
		}
		if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
			t.Errorf("key directory mode %04o, want 0700", di.Mode().Perm())
		}
	}
	if k.Priv.Type() != crypto.Ed25519 {
		t.Errorf("key type %v, want ed25519", k.Priv.Type())
	}
	if !k.ID.MatchesPrivateKey(k.Priv) {
		t.Error("ID does not match the private key")
	}

	again, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate: created=%v err=%v", created, err)
	}
	if again.ID != k.ID || !again.Priv.Equals(k.Priv) {
		t.Errorf("reload gave ID %s, want %s", again.ID, k.ID)
	}
	loaded, err := Load(path)
	if err != nil || loaded.ID != k.ID {
		t.Errorf("Load: %v, ID %v", err, loaded)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(testdir.New(t), "none.key"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
}

func TestInsecureKeyRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("skipping: file modes are not access control on Windows; TestOpenAccessListRefused checks the access list")
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o666, 0o602} {
		path := filepath.Join(testdir.New(t), "agent.key")
		if _, _, err := LoadOrCreate(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		for name, load := range map[string]func() error{
			"Load":         func() error { _, err := Load(path); return err },
			"LoadOrCreate": func() error { _, _, err := LoadOrCreate(path); return err },
		} {
			err := load()
			if !errors.Is(err, ErrInsecureKey) {
				t.Errorf("%s of a %04o key: got %v, want ErrInsecureKey", name, mode, err)
				continue
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "chmod 600 "+path) {
				t.Errorf("%s: message %q should name %s and say chmod 600", name, msg, path)
			}
		}
		// Refusing must not replace the key.
		if fi, _ := os.Stat(path); fi.Mode().Perm() != mode {
			t.Errorf("mode changed to %04o", fi.Mode().Perm())
		}
	}
}

func TestNotAKeyRefused(t *testing.T) {
	ec, _, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecdsa, err := crypto.MarshalPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, "not a key file"},
		{"text", []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"), "not a key file"},
		{"ecdsa key", ecdsa, "readymesh uses ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(testdir.New(t), "agent.key")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, created, err := LoadOrCreate(path)
			if err == nil || created {
				t.Fatalf("got created=%v err=%v, want a refusal", created, err)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q should say %q and name the file", err, tt.msg)
			}
			// The file is left alone, not overwritten with a new key.
			if got, _ := os.ReadFile(path); string(got) != string(tt.data) {
				t.Error("the file was changed")
			}
		})
	}
}

// TestLoadOrCreateConcurrent: agents started twice at once (a service and
// a manual run) must end up with one identity, and neither may fail.
func TestLoadOrCreateConcurrent(t *testing.T) {
	const rounds, racers = 100, 8
	for round := range rounds {
		path := filepath.Join(testdir.New(t), "agent.key")
		keys := make([]*Key, racers)
		errs := make([]error, racers)
		var created [racers]bool
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				keys[i], created[i], errs[i] = LoadOrCreate(path)
			}()
		}
		close(start)
		wg.Wait()
		n := 0
		for i := range racers {
			if errs[i] != nil {
				t.Fatalf("round %d: racer %d failed: %v", round, i, errs[i])
			}
			if keys[i].ID != keys[0].ID {
				t.Fatalf("round %d: racers disagree: %s vs %s", round, keys[i].ID, keys[0].ID)
			}
			if created[i] {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("round %d: %d racers report creating the key, want 1", round, n)
		}
	}
}
