package cluster

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// maxKeyFile bounds the size of a key file read by LoadKeyFile; a file of
// gossip keys is a few lines.
const maxKeyFile = 64 << 10

// LoadKeyFile reads gossip keys from path: one standard base64 key per
// line, each decoding to 16, 24 or 32 bytes (AES-128, -192 or -256). Blank
// lines and lines starting with '#' are skipped. The first key is the
// primary one, used to encrypt; the others are accepted when decrypting,
// which is how keys are rotated without a flag day.
//
// Like an ssh private key, the file must not be readable or writable by
// group or others (chmod 600); a looser file is refused.
func LoadKeyFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrKeyFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o: group or others can access it; run chmod 600 %s",
			ErrKeyFile, path, perm, path)
	}
	if fi.Size() > maxKeyFile {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrKeyFile, path, fi.Size(), maxKeyFile)
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	keys, err := parseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	return keys, nil
}

// parseKeys decodes the lines of a key file.
func parseKeys(data []byte) ([][]byte, error) {
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: not base64: %w", n, err)
		}
		if err := checkKey(key); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no keys")
	}
	return keys, nil
}

// checkKey accepts AES key sizes.
func checkKey(key []byte) error {
	switch len(key) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("key is %d bytes; want 16, 24 or 32", len(key))
}
