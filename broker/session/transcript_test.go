package session

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// enrol enrols a machine with a fresh peer ID as client/name and returns
// that peer ID.
func enrol(t *testing.T, st *store.Store, client, name string) peer.ID {
	t.Helper()
	id := fleettest.PeerID(t)
	fleettest.Enrol(t, st, id.String(), client, name, time.Now())
	return id
}

// newService is a Service on st without a STUN port.
func newService(t *testing.T, st Store) *Service {
	t.Helper()
	s, err := New(Config{STUN: "off"}, Deps{Store: st, Status: NewStatus(0, nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Session IDs: two share their first four digits.
const (
	sessWeb  = "aaaa0000000000000000000000000001"
	sessWeb2 = "aaaa0000000000000000000000000002"
	sessBeta = "bbbb0000000000000000000000000003"
	sessGone = "cccc0000000000000000000000000004"
)

func TestTranscripts(t *testing.T) {
	st := fleettest.Open(t)
	web, beta := enrol(t, st, "acme", "web"), enrol(t, st, "beta", "web")
	for _, x := range []wire.Transcript{
		{Session: sessWeb, Name: sessWeb + "-1.cast", Machine: web.String(), Cast: []byte("one")},
		{Session: sessWeb, Name: sessWeb + "-2.cast", Machine: web.String(), Cast: []byte("two")},
		{Session: sessWeb2, Name: sessWeb2 + "-1.cast", Machine: web.String(), Cast: []byte("three")},
		{Session: sessBeta, Name: sessBeta + "-1.cast", Machine: beta.String(), Cast: []byte("four")},
		// Of a machine no longer enrolled here: nobody sees it.
		{Session: sessGone, Name: sessGone + "-1.cast", Machine: "12D3KooGone", Cast: []byte("five")},
	} {
		if err := st.PutTranscript(x); err != nil {
			t.Fatal(err)
		}
	}
	s := newService(t, st)
	alice := &wire.Technician{Name: "alice", Clients: []string{"acme"}}
	admin := &wire.Technician{Name: "admin", Admin: true}
	tests := []struct {
		desc    string
		tech    *wire.Technician
		session string
		want    []string // names, sorted
	}{
		{"one session, every part", alice, sessWeb, []string{sessWeb + "-1.cast", sessWeb + "-2.cast"}},
		{"a prefix", alice, "aaaa", []string{sessWeb + "-1.cast", sessWeb + "-2.cast", sessWeb2 + "-1.cast"}},
		{"outside the scope", alice, sessBeta, nil},
		{"admin", admin, sessBeta, []string{sessBeta + "-1.cast"}},
		{"machine not enrolled", admin, sessGone, nil},
		{"no such session", admin, "dddd", nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			ts, werr := s.Transcripts(tc.tech, &wire.TranscriptArgs{Session: tc.session})
			if tc.want == nil {
				if werr == nil || werr.Code != wire.CodeNotFound || len(ts) != 0 {
					t.Errorf("Transcripts = %d, %v; want not_found", len(ts), werr)
				}
				return
			}
			if werr != nil {
				t.Fatal(werr)
			}
			var names []string
			for _, x := range ts {
				names = append(names, x.Name)
				if !strings.HasSuffix(x.Machine, "/web") {
					t.Errorf("transcript %s names machine %q, want client/name", x.Name, x.Machine)
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, tc.want) {
				t.Errorf("got %v, want %v", names, tc.want)
			}
		})
	}
}

// TestServeTranscript: an agent files transcripts only of sessions
// granted to it, and only under its own machine.
func TestServeTranscript(t *testing.T) {
	st := fleettest.Open(t)
	web := enrol(t, st, "acme", "web")
	s := newService(t, st)
	s.grants.add(sessWeb, web.String())
	stranger := peer.ID("not-enrolled")
	s.grants.add(sessWeb2, stranger.String())
	tests := []struct {
		desc   string
		remote peer.ID
		x      wire.Transcript
		code   string
	}{
		{"another machine's session", web, wire.Transcript{Session: sessBeta, Name: "x.cast"}, wire.CodeForbidden},
		{"granted, but not enrolled", stranger, wire.Transcript{Session: sessWeb2, Name: "x.cast"}, wire.CodeUnauthorized},
		{"too large", web, wire.Transcript{Session: sessWeb, Name: "x.cast", Cast: make([]byte, wire.MaxTranscript+1)}, wire.CodeTooLarge},
		// The machine field is the agent's own whatever it says.
		{"filed", web, wire.Transcript{Session: sessWeb, Name: "x.cast", Machine: "someone-else", Cast: []byte("ok")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			reply, err := s.ServeTranscript(&serve.Stream{Remote: tc.remote}, &tc.x)
			if tc.code != "" {
				if werr := serve.Code(err); err == nil || werr.Code != tc.code {
					t.Errorf("ServeTranscript = %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil || reply == nil {
				t.Fatalf("ServeTranscript = %v, %v", reply, err)
			}
		})
	}
	ts, err := st.Transcripts(sessWeb)
	if err != nil || len(ts) != 1 || ts[0].Machine != web.String() || string(ts[0].Cast) != "ok" {
		t.Errorf("stored %+v, %v; want one transcript under the agent's own machine", ts, err)
	}
}
