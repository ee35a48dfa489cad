package enrol_test

import (
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/enrol"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

// TestTokenCarriesReleaseKey: an enrolment token made before the fleet
// trusts a release key carries none; one made after carries the key, for
// the agent to pin.
func TestTokenCarriesReleaseKey(t *testing.T) {
	st := fleettest.Open(t)
	if _, err := st.CreateClient("acme", now); err != nil {
		t.Fatal(err)
	}
	a := enrol.New(enrol.Config{DataDir: t.TempDir(), Now: func() time.Time { return now }}, st, newSelf(t), &repl{})
	token := func() wire.Token {
		t.Helper()
		res, werr := a.CreateToken(&wire.Technician{Name: "alice"}, &wire.TokenArgs{Client: "acme"})
		if werr != nil {
			t.Fatal(werr)
		}
		tok, err := wire.ParseToken(wire.KindEnroll, res.Token)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if tok := token(); tok.ReleaseKey != "" {
		t.Errorf("a token made before any key is trusted carries %q", tok.ReleaseKey)
	}
	key := "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"
	if err := st.SetReleaseKey(store.ReleaseKeyRecord{PublicKey: key, KeyID: "E7620F1842B4E81F", SetBy: "alice",
		SetAt: now, Via: "trust"}); err != nil {
		t.Fatal(err)
	}
	if tok := token(); tok.ReleaseKey != key {
		t.Errorf("a token made once the fleet trusts a key carries %q, want %q", tok.ReleaseKey, key)
	}
}
