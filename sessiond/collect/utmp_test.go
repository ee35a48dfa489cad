package collect

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/readymesh/readymesh/integration/testdir"
)

// utmpBytes builds a utmp file from (type, user) pairs in the given order.
func utmpBytes(t testing.TB, order binary.ByteOrder, recs ...utmpRecord) []byte {
	var b []byte
	for _, r := range recs {
		var err error
		if b, err = binary.Append(b, order, r); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func utmpRec(typ int16, user, line string) utmpRecord {
	r := utmpRecord{Type: typ, PID: 4242}
	copy(r.User[:], user)
	copy(r.Line[:], line)
	return r
}

// TestUtmpLayout builds records byte by byte at glibc's offsets (ut_type
// at 0, ut_user at 44, 384 bytes each), independently of utmpRecord.
func TestUtmpLayout(t *testing.T) {
	if utmpSize != 384 {
		t.Fatalf("utmp record is %d bytes, glibc's is 384", utmpSize)
	}
	rec := func(typ uint16, user string) []byte {
		b := make([]byte, 384)
		binary.NativeEndian.PutUint16(b[0:], typ)
		binary.NativeEndian.PutUint32(b[4:], 1234) // ut_pid
		copy(b[8:], "pts/7")                       // ut_line
		copy(b[44:], user)                         // ut_user
		copy(b[76:], "192.0.2.1")                  // ut_host
		return b
	}
	b := slices.Concat(rec(userProcess, "dave"), rec(8, "erin"), rec(userProcess, "frank"))
	if got, want := parseUtmp(b, binary.NativeEndian), []string{"dave", "frank"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseUtmp(t *testing.T) {
	const bootTime, initProcess, loginProcess, deadProcess = 2, 5, 6, 8
	full := "abcdefghijklmnopqrstuvwxyz012345" // fills ut_user, no NUL
	tests := []struct {
		name string
		recs []utmpRecord
		tail int // bytes of a partial record appended
		want []string
	}{
		{name: "empty", want: []string{}},
		{
			name: "sessions sorted and deduplicated",
			recs: []utmpRecord{
				utmpRec(bootTime, "reboot", "~"),
				utmpRec(userProcess, "mallory", "pts/1"),
				utmpRec(initProcess, "", "tty1"),
				utmpRec(loginProcess, "LOGIN", "tty2"),
				utmpRec(userProcess, "alice", "tty3"),
				utmpRec(userProcess, "mallory", "pts/2"),
				utmpRec(deadProcess, "bob", "pts/3"),
				utmpRec(userProcess, "", "pts/4"),
			},
			want: []string{"alice", "mallory"},
		},
		{
			name: "full-width name and partial tail",
			recs: []utmpRecord{utmpRec(userProcess, full, "pts/0")},
			tail: 100,
			want: []string{full},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := utmpBytes(t, binary.NativeEndian, tt.recs...)
			b = append(b, make([]byte, tt.tail)...)
			if got := parseUtmp(b, binary.NativeEndian); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUsersBelowRoot(t *testing.T) {
	root := testdir.New(t)
	got, err := Config{Root: root}.Users()
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("no utmp: got %q, %v; want empty list", got, err)
	}
	b := utmpBytes(t, binary.NativeEndian, utmpRec(userProcess, "carol", "pts/0"))
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "run/utmp"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = Config{Root: root}.Users()
	if err != nil || !slices.Equal(got, []string{"carol"}) {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestUsersHost(t *testing.T) {
	users, err := Users()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("logged in: %q", users)
}

// FuzzParseUtmp checks that any bytes parse without panicking into sorted,
// distinct, non-empty names.
func FuzzParseUtmp(f *testing.F) {
	f.Add(utmpBytes(f, binary.NativeEndian, utmpRec(userProcess, "alice", "pts/0"), utmpRec(2, "reboot", "~")))
	f.Add(make([]byte, 383))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := parseUtmp(b, binary.NativeEndian)
		for i, u := range got {
			if u == "" || i > 0 && got[i-1] >= u {
				t.Fatalf("bad list %q", got)
			}
		}
	})
}
