package wire

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// testBrokerInfo is a broker as tokens carry it.
var testBrokerInfo = BrokerInfo{
	PeerID: "12D3KooWQ6XW1Jtq5mPmS7XsUHBQv7mJc7nDL2yd3dE9Y4cjcR2e",
	Addrs: []string{
		"/ip4/192.0.2.1/udp/7400/quic-v1/p2p/12D3KooWQ6XW1Jtq5mPmS7XsUHBQv7mJc7nDL2yd3dE9Y4cjcR2e",
		"/ip4/192.0.2.1/tcp/7400/p2p/12D3KooWQ6XW1Jtq5mPmS7XsUHBQv7mJc7nDL2yd3dE9Y4cjcR2e",
	},
	HTTP: "127.0.0.1:7480", Name: "eu-1", Region: "eu",
}

func TestTokenRoundTrip(t *testing.T) {
	for _, kind := range []string{KindEnroll, KindLogin} {
		tok := Token{Kind: kind, Secret: NewSecret(), Broker: testBrokerInfo}
		s := tok.String()
		if !strings.HasPrefix(s, kind+"_") {
			t.Errorf("%s token %q lacks its prefix", kind, s)
		}
		got, err := ParseToken(kind, s)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !reflect.DeepEqual(got, tok) {
			t.Errorf("%s: got %+v, want %+v", kind, got, tok)
		}
		// A credential file ends in a newline; pasted tokens carry spaces.
		if got, err := ParseToken(kind, "  "+s+"\n"); err != nil || !reflect.DeepEqual(got, tok) {
			t.Errorf("%s with whitespace: %v", kind, err)
		}
	}
}

func TestParseTokenRefused(t *testing.T) {
	secret := NewSecret()
	enc := func(body string) string { return KindEnroll + "_" + base64.RawURLEncoding.EncodeToString([]byte(body)) }
	valid := Token{Kind: KindEnroll, Secret: secret, Broker: testBrokerInfo}
	noPeer, noAddrs := valid, valid
	noPeer.Broker.PeerID = ""
	noAddrs.Broker.Addrs = nil
	shortSecret := valid
	shortSecret.Secret = secret[:63]
	tests := []struct {
		name, s, kind, msg string
	}{
		{"login token where enrol expected", Token{Kind: KindLogin, Secret: secret, Broker: testBrokerInfo}.String(), KindEnroll, `"rml1" token, expected "rme1"`},
		{"enrol token where login expected", valid.String(), KindLogin, `"rme1" token, expected "rml1"`},
		{"empty", "", KindEnroll, "expected rme1_"},
		{"no separator", "rme1", KindEnroll, "expected rme1_"},
		{"unknown kind", "rmx9_" + strings.Repeat("A", 20), KindEnroll, `"rmx9"`},
		{"bad base64", "rme1_!!!not base64!!!", KindEnroll, "illegal base64"},
		{"padded base64", valid.String() + "==", KindEnroll, "illegal base64"},
		{"not JSON", enc("secret=1234"), KindEnroll, "invalid character"},
		{"JSON array", enc(`["s","b"]`), KindEnroll, "cannot unmarshal"},
		{"no broker peer", noPeer.String(), KindEnroll, "names no broker"},
		{"no broker addresses", noAddrs.String(), KindEnroll, "names no broker"},
		{"empty object", enc(`{}`), KindEnroll, "bad secret"},
		{"short secret", shortSecret.String(), KindEnroll, "bad secret"},
		{"too long", KindEnroll + "_" + strings.Repeat("A", MaxControl), KindEnroll, "expected rme1_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseToken(tt.kind, tt.s)
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("got %+v, %v; want ErrBadToken", got, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			if !reflect.DeepEqual(got, Token{}) {
				t.Errorf("refused token returned %+v", got)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	if len(a) != 64 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("secret %q is not 32 hex-encoded bytes", a)
	}
	if a == b {
		t.Error("two secrets are equal")
	}
	h := HashSecret(a)
	if len(h) != 64 || h == a || h != HashSecret(a) || h == HashSecret(b) {
		t.Errorf("HashSecret(%q) = %q", a, h)
	}
	// The known sha256 of "abc", so the stored form never silently changes.
	if got := HashSecret("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashSecret(abc) = %s", got)
	}
}
