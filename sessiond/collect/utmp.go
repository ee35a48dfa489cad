package collect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"slices"
)

// utmpPaths are where glibc keeps the login records, tried in order.
var utmpPaths = []string{"/var/run/utmp", "/run/utmp"}

// maxUtmp bounds how much of utmp is read: far more than any machine's
// logins, small enough to never matter.
const maxUtmp = 4 << 20

// userProcess is ut_type for a login session.
const userProcess = 7

// utmpRecord is glibc's struct utmp on Linux. Its layout is the same on
// 32- and 64-bit platforms (ut_tv is two int32s on both), 384 bytes, in the
// machine's byte order.
type utmpRecord struct {
	Type    int16
	_       [2]byte
	PID     int32
	Line    [32]byte
	ID      [4]byte
	User    [32]byte
	Host    [256]byte
	Exit    [2]int16
	Session int32
	TV      [2]int32
	AddrV6  [4]int32
	_       [20]byte
}

var utmpSize = binary.Size(utmpRecord{})

// Users returns the names of the people logged in, sorted and without
// repeats, from utmp's login records below c.Root. A machine without utmp
// (systemd systems are dropping it) has an empty list, not an error.
func (c Config) Users() ([]string, error) {
	m := c.machine()
	for _, p := range utmpPaths {
		b, err := readLimited(m.path(p), maxUtmp)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("collect: users: %w", err)
		}
		return parseUtmp(b, binary.NativeEndian), nil
	}
	return []string{}, nil
}

// parseUtmp returns the user names of the login records in b. A partial
// record at the end (utmp being written) is ignored.
func parseUtmp(b []byte, order binary.ByteOrder) []string {
	users := []string{}
	var rec utmpRecord
	for ; len(b) >= utmpSize; b = b[utmpSize:] {
		if _, err := binary.Decode(b[:utmpSize], order, &rec); err != nil {
			break
		}
		if rec.Type != userProcess {
			continue
		}
		if name := cString(rec.User[:]); name != "" {
			users = append(users, name)
		}
	}
	slices.Sort(users)
	return slices.Compact(users)
}

// cString returns b up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
