package release

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"aead.dev/minisign"
)

// Key files Keygen writes.
const (
	SecretKeyFile = "release.key" // the minisign secret key, mode 0600
	PublicKeyFile = "release.pub" // the minisign public key, mode 0644
)

// ErrNoPassword is returned when a secret key would be written, or is
// stored, encrypted and no password was given.
var ErrNoPassword = errors.New("release: a password is needed")

// Keygen makes a new release key pair in dir (created 0700 if missing):
// SecretKeyFile, encrypted with password in minisign's format (scrypt
// with minisign's own cost, about 1 GiB of memory and seconds of work,
// which is what makes a stolen key file expensive to guess), and
// PublicKeyFile. It refuses an empty password (KeygenUnencrypted writes
// the key in the clear, on purpose) and refuses to overwrite either
// file.
func Keygen(dir, password string) (PublicKey, error) {
	if password == "" {
		return PublicKey{}, fmt.Errorf("%w: an empty one would leave the secret key in the clear", ErrNoPassword)
	}
	return keygen(dir, func(k minisign.PrivateKey) ([]byte, error) {
		return minisign.EncryptKey(password, k)
	})
}

// KeygenUnencrypted is Keygen writing the secret key without a password,
// for release pipelines that keep the key file in a secret store of
// their own. Anyone who reads the file can sign releases every agent of
// the fleet installs.
func KeygenUnencrypted(dir string) (PublicKey, error) {
	return keygen(dir, minisign.PrivateKey.MarshalText)
}

// keygen writes a new key pair into dir, the secret key encoded by encode.
func keygen(dir string, encode func(minisign.PrivateKey) ([]byte, error)) (PublicKey, error) {
	secretPath := filepath.Join(dir, SecretKeyFile)
	publicPath := filepath.Join(dir, PublicKeyFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return PublicKey{}, fmt.Errorf("release: key directory: %w", err)
	}
	for _, p := range []string{secretPath, publicPath} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			return PublicKey{}, fmt.Errorf("release: %s exists: refusing to overwrite a key", p)
		}
	}
	_, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		return PublicKey{}, fmt.Errorf("release: generate a key: %w", err)
	}
	secret, err := encode(priv)
	if err != nil {
		return PublicKey{}, fmt.Errorf("release: encode the secret key: %w", err)
	}
	k := SecretKey{key: priv}
	pub := k.Public()
	if err := writeNew(secretPath, append(secret, '\n'), 0o600); err != nil {
		return PublicKey{}, err
	}
	if err := writeNew(publicPath, []byte(pub.fileText()), 0o644); err != nil {
		os.Remove(secretPath) // a secret key without its public key is of no use
		return PublicKey{}, err
	}
	return pub, nil
}

// writeNew writes data to a file that must not exist yet, with mode perm
// (exactly: the umask does not widen or narrow it).
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("release: write %s: %w", path, err)
	}
	return nil
}

// ReadSecretKey reads a minisign secret key file, as Keygen or the
// minisign tool writes it. password is called only when the key is
// encrypted (so a pipeline with an unencrypted key needs none); it may
// ask someone, or return ErrNoPassword. A nil password is one that
// returns ErrNoPassword.
func ReadSecretKey(path string, password func() (string, error)) (SecretKey, error) {
	text, err := readLimited(path, maxKeyText)
	if err != nil {
		return SecretKey{}, err
	}
	if !minisign.IsEncrypted(text) {
		var k minisign.PrivateKey
		if err := k.UnmarshalText(text); err != nil {
			return SecretKey{}, fmt.Errorf("release: %s: not a minisign secret key: %w", path, err)
		}
		return SecretKey{key: k}, nil
	}
	if password == nil {
		return SecretKey{}, fmt.Errorf("release: %s is encrypted: %w", path, ErrNoPassword)
	}
	pw, err := password()
	if err != nil {
		return SecretKey{}, fmt.Errorf("release: %s is encrypted: %w", path, err)
	}
	if pw == "" {
		return SecretKey{}, fmt.Errorf("release: %s is encrypted: %w", path, ErrNoPassword)
	}
	k, err := minisign.DecryptKey(pw, text)
	if err != nil {
		return SecretKey{}, fmt.Errorf("release: %s: wrong password, or a damaged key file: %w", path, err)
	}
	return SecretKey{key: k}, nil
}

// readLimited reads a file of at most max bytes.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("release: read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("release: %s is larger than %d bytes", path, max)
	}
	return b, nil
}
