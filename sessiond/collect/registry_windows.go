package collect

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/sys/windows/registry"
)

// maxRegValue bounds the size of one registry value the collectors read,
// in bytes as stored (UTF-16). Real values are tens of bytes; a larger one
// is reported as an error rather than read.
const maxRegValue = 64 << 10

// maxUninstallKeys bounds the subkeys of an Uninstall key read in each
// registry view (see windowsPackages for the other bounds).
const maxUninstallKeys = 10_000

// readValues reads the named values of key path below root, for the
// mapping functions: strings as they are (REG_EXPAND_SZ unexpanded),
// REG_DWORD and REG_QWORD in decimal. A value that is absent is left out
// of the map; one that cannot be read (another type, larger than
// maxRegValue) is left out too and named in the error. Opening the key is
// the only failure that leaves the map nil.
func readValues(root registry.Key, path string, access uint32, names []string) (map[string]string, error) {
	k, err := registry.OpenKey(root, path, registry.QUERY_VALUE|access)
	if err != nil {
		return nil, fmt.Errorf(`open %s: %w`, path, err)
	}
	defer k.Close()
	return keyValues(k, names)
}

// keyValues reads the named values of an open key, as readValues does.
func keyValues(k registry.Key, names []string) (map[string]string, error) {
	vals := make(map[string]string, len(names))
	var errs []error
	for _, name := range names {
		v, err := valueString(k, name)
		switch {
		case errors.Is(err, registry.ErrNotExist):
		case err != nil:
			errs = append(errs, fmt.Errorf("value %s: %w", name, err))
		default:
			vals[name] = v
		}
	}
	return vals, errors.Join(errs...)
}

// valueString reads one value as text, after checking its size.
func valueString(k registry.Key, name string) (string, error) {
	size, typ, err := k.GetValue(name, nil)
	if err != nil {
		return "", err
	}
	if size > maxRegValue {
		return "", fmt.Errorf("%d bytes, limit %d", size, maxRegValue)
	}
	switch typ {
	case registry.SZ, registry.EXPAND_SZ:
		s, _, err := k.GetStringValue(name)
		return s, err
	case registry.DWORD, registry.QWORD:
		n, _, err := k.GetIntegerValue(name)
		return strconv.FormatUint(n, 10), err
	}
	return "", fmt.Errorf("registry type %d is not a string or an integer", typ)
}

// readUninstall reads the entries of the Uninstall key at path below root
// in one registry view (registry.WOW64_64KEY or WOW64_32KEY); entries is
// nil only when the key could not be opened or listed. A view without the
// key (Wine's 64-bit prefixes have no 32-bit one) has no entries. It reads at
// most maxUninstallKeys subkeys; truncated says there were more. Entries
// whose subkey cannot be opened or read are skipped and counted in the
// error, with the first such error; the entries read are returned anyway.
func readUninstall(root registry.Key, path string, view uint32) (entries []uninstallEntry, truncated bool, err error) {
	k, err := registry.OpenKey(root, path, registry.ENUMERATE_SUB_KEYS|view)
	if errors.Is(err, registry.ErrNotExist) {
		return []uninstallEntry{}, false, nil // nothing was ever installed in this view
	}
	if err != nil {
		return nil, false, fmt.Errorf("open %s: %w", path, err)
	}
	defer k.Close()
	names, listErr := k.ReadSubKeyNames(maxUninstallKeys + 1)
	if listErr != nil && listErr != io.EOF {
		return nil, false, fmt.Errorf("list %s: %w", path, listErr)
	}
	if len(names) > maxUninstallKeys {
		names, truncated = names[:maxUninstallKeys], true
	}
	entries = []uninstallEntry{} // non-nil: the key was read
	var bad int
	var firstErr error
	for _, name := range names {
		vals, err := readValues(k, name, view, uninstallValues)
		if err != nil {
			bad++
			firstErr = cmpOrErr(firstErr, fmt.Errorf("%s: %w", name, err))
		}
		if vals != nil {
			entries = append(entries, uninstallEntry{Key: name, Values: vals})
		}
	}
	if bad > 0 {
		return entries, truncated, fmt.Errorf("%d entries of %s not fully read, first: %w", bad, path, firstErr)
	}
	return entries, truncated, nil
}

// cmpOrErr returns the first non-nil error.
func cmpOrErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
