package collect

import (
	"encoding/binary"
	"slices"
	"testing"
)

// utmpxRecord builds one record of a macOS utmpx file (struct utmpx32).
// No Mac's file could be captured here; the layout is Libc's, written out
// in mac_users.go.
func utmpxRecord(user, line string, typ int16) []byte {
	r := make([]byte, utmpxSize)
	copy(r[:utmpxUserLen], user)
	copy(r[utmpxLineOff:utmpxLineOff+32], line)
	binary.LittleEndian.PutUint32(r[292:], 812) // ut_pid
	binary.LittleEndian.PutUint16(r[utmpxTypeOff:], uint16(typ))
	binary.LittleEndian.PutUint32(r[300:], 1704877964) // ut_tv.tv_sec
	copy(r[308:], "203.0.113.7")                       // ut_host
	return r
}

func TestParseUtmpx(t *testing.T) {
	var b []byte
	b = append(b, utmpxRecord("utmpx-1.00", "", 10)...) // the signature record
	b = append(b, utmpxRecord("alex", "console", utmpxUserProcess)...)
	b = append(b, utmpxRecord("alex", "ttys000", utmpxUserProcess)...)
	b = append(b, utmpxRecord("sam", "ttys001", utmpxUserProcess)...)
	b = append(b, utmpxRecord("kim", "ttys002", 8)...) // DEAD_PROCESS: logged out
	b = append(b, utmpxRecord("", "ttys003", utmpxUserProcess)...)
	b = append(b, utmpxRecord("_mbsetupuser", "console", utmpxUserProcess)...)
	b = append(b, utmpxRecord("root", "ttys004", 2)...) // BOOT_TIME
	b = append(b, utmpxRecord("root", "ttys008", utmpxUserProcess)...)
	b = append(b, utmpxRecord("bell\a", "ttys005", utmpxUserProcess)...)
	b = append(b, utmpxRecord(string(make([]byte, 300)), "ttys006", utmpxUserProcess)...)
	b = append(b, utmpxRecord("zed", "ttys007", utmpxUserProcess)[:400]...) // being written
	got := parseUtmpx(b)
	if want := []string{"alex", "root", "sam"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// A user name filling the whole field has no NUL and is still read.
	full := string(slices.Repeat([]byte{'u'}, utmpxUserLen))
	if got := parseUtmpx(utmpxRecord(full, "ttys000", utmpxUserProcess)); !slices.Equal(got, []string{full}) {
		t.Errorf("full-width name: %q", got)
	}
	if got := parseUtmpx(nil); got == nil || len(got) != 0 {
		t.Errorf("empty file: %#v", got)
	}
}

func TestMacUsers(t *testing.T) {
	tests := []struct {
		console  string
		sessions []string
		want     []string
	}{
		{"alex", []string{"sam"}, []string{"alex", "sam"}},
		{"alex", []string{"alex"}, []string{"alex"}},
		{"root", nil, []string{}},                    // the login window
		{"root", []string{"root"}, []string{"root"}}, // a root session elsewhere
		{"_mbsetupuser", []string{"sam"}, []string{"sam"}},
		{"", nil, []string{}},
		{"zed", []string{"bo", "amy"}, []string{"amy", "bo", "zed"}},
	}
	for _, tt := range tests {
		got := macUsers(tt.console, tt.sessions)
		if got == nil || !slices.Equal(got, tt.want) {
			t.Errorf("macUsers(%q, %q) = %#v, want %q", tt.console, tt.sessions, got, tt.want)
		}
	}
}
