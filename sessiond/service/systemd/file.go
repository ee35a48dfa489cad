package systemd

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to path through a temporary file beside it, with
// mode whatever the umask, so that nothing ever reads a half-written
// unit or runs a half-written binary.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil { // WriteFile's mode passes through the umask
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// CopyExe copies the binary src to dst (0755), making dst's directory,
// unless dst is src.
func CopyExe(src, dst string) error {
	if same(src, dst) {
		return nil
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return WriteFile(dst, raw, 0o755)
}

// same reports whether a and b are one file.
func same(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
