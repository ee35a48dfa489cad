package collect

import (
	"encoding/binary"
	"slices"
	"strings"
)

// macUtmpxPath is where macOS keeps its login records.
const macUtmpxPath = "/var/run/utmpx"

// macUtmpxMax bounds how much of utmpx is read: thousands of records, far
// more than any machine's logins.
const macUtmpxMax = 4 << 20

// The on-disk record is Libc's struct utmpx32 on every architecture: 64-bit
// processes convert to and from it, so the file's layout does not depend
// on who wrote it. Little-endian on both architectures macOS runs on.
//
//	char     ut_user[256];   // offset 0
//	char     ut_id[4];       // 256
//	char     ut_line[32];    // 260
//	pid_t    ut_pid;         // 292
//	short    ut_type;        // 296, then 2 bytes of padding
//	struct timeval32 ut_tv;  // 300: two int32s
//	char     ut_host[256];   // 308
//	uint32_t ut_pad[16];     // 564
const (
	utmpxSize    = 628
	utmpxUserLen = 256
	utmpxLineOff = 260
	utmpxTypeOff = 296
)

// utmpxUserProcess is ut_type for a login session. The file's first record
// is a signature (ut_type 10, ut_user "utmpx-1.00"), which this skips like
// every other type.
const utmpxUserProcess = 7

// parseUtmpx returns the user names of the login sessions in a macOS
// utmpx file, sorted and without repeats. A partial record at the end
// (the file being written) is ignored.
func parseUtmpx(b []byte) []string {
	users := []string{}
	for ; len(b) >= utmpxSize; b = b[utmpxSize:] {
		if int16(binary.LittleEndian.Uint16(b[utmpxTypeOff:])) != utmpxUserProcess {
			continue
		}
		if name := cString(b[:utmpxUserLen]); macSessionName(name) {
			users = append(users, name)
		}
	}
	slices.Sort(users)
	return slices.Compact(users)
}

// macSessionName reports whether a login session's user is a person's
// account: macOS' service accounts (_mbsetupuser during Setup Assistant,
// _windowserver) all start with an underscore. root is kept: a session as
// root is someone at work on the machine.
func macSessionName(name string) bool {
	return name != "" && !strings.HasPrefix(name, "_") && !hasControl(name)
}

// macConsoleName reports whether the console's owner is a person: root
// owns the console at the login window, which means nobody is there.
func macConsoleName(name string) bool {
	return name != "root" && macSessionName(name)
}

// macUsers merges the console's owner (when a person) with the login
// sessions, sorted and without repeats.
func macUsers(console string, sessions []string) []string {
	users := slices.Clone(sessions)
	if macConsoleName(console) {
		users = append(users, console)
	}
	if users == nil {
		users = []string{}
	}
	slices.Sort(users)
	return slices.Compact(users)
}
