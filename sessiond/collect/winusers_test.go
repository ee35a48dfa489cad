package collect

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSessionUsers(t *testing.T) {
	got := sessionUsers([]wtsSession{
		{ID: 0, State: 4}, // services: disconnected, no user
		{ID: 1, State: wtsActive, User: "alice", Domain: "CONTOSO"},
		{ID: 2, State: wtsDisconnected, User: "bob", Domain: "FRONTDESK-01"},
		{ID: 3, State: 1, User: "carol", Domain: "CONTOSO"}, // connected, not logged on
		{ID: 4, State: 6}, // listener
		{ID: 5, State: wtsActive, User: "alice", Domain: "CONTOSO"},
		{ID: 6, State: wtsActive, User: "dave"},
		{ID: 7, State: wtsActive, User: "  ", Domain: "CONTOSO"},
		{ID: 8, State: wtsActive, User: "eve\x00\r\n", Domain: strings.Repeat("D", 1000)},
	})
	want := []string{`CONTOSO\alice`, cleanText(strings.Repeat("D", 1000)+`\eve`, maxUserName), `FRONTDESK-01\bob`, "dave"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := sessionUsers(nil); got == nil || len(got) != 0 {
		t.Errorf("no sessions: %#v, want an empty list", got)
	}
}

func TestBootID(t *testing.T) {
	// 2024-01-15T08:30:12.3456789Z as a FILETIME.
	boot := time.Date(2024, 1, 15, 8, 30, 12, 345678900, time.UTC)
	ft := unixEpochFileTime + boot.UnixNano()/100
	if got := bootID(ft, 0); got != "2024-01-15T08:30:12Z" {
		t.Errorf("bootID = %q", got)
	}
	// The clock was set forward by 90 s after boot: the kernel moved
	// BootTime and recorded the move in BootTimeBias. The ID stays.
	if got := bootID(ft+90*sec, 90*sec); got != "2024-01-15T08:30:12Z" {
		t.Errorf("after the clock moved forward: %q", got)
	}
	// Set back by 2 h: a negative bias, in two's complement.
	back := int64(-2 * 3600 * sec)
	if got := bootID(ft+back, uint64(back)); got != "2024-01-15T08:30:12Z" {
		t.Errorf("after the clock moved back: %q", got)
	}
	// The next boot, a minute later, has another ID.
	if bootID(ft+60*sec, 0) == bootID(ft, 0) {
		t.Error("two boots a minute apart have one ID")
	}
}
