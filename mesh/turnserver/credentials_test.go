package turnserver

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the scheme under test
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCredentialsFormat(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	expiry := time.Unix(1893456000, 0)
	user, pass := Credentials(secret, "agent:42", expiry)
	if user != "1893456000:agent:42" {
		t.Fatalf("username %q", user)
	}
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(user))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); pass != want {
		t.Fatalf("password %q, want %q", pass, want)
	}
	if _, p2 := Credentials(secret, "agent:42", expiry); p2 != pass {
		t.Fatal("Credentials is not deterministic")
	}
}

func TestParseUsername(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		username string
		user     string
		err      error
	}{
		{"1800000001:alice", "alice", nil},
		{"1800000001:agent:42", "agent:42", nil},  // users may contain colons
		{"1800000000:alice", "alice", errExpired}, // expiry is exclusive
		{"1:alice", "alice", errExpired},
		{"alice", "", errUsernameForm},
		{"1800000001:", "", errUsernameForm},
		{":alice", "", errUsernameForm},
		{"+1800000001:alice", "", errUsernameForm},
		{"-1:alice", "", errUsernameForm},
		{"99999999999999999999:alice", "", errUsernameForm},
		{"1800000001:" + strings.Repeat("a", maxUsernameLen), "", errUsernameForm},
	} {
		user, _, err := parseUsername(tc.username, now)
		if !errors.Is(err, tc.err) || (tc.err == nil && user != tc.user) {
			t.Errorf("parseUsername(%.40q) = %q, %v; want %q, %v", tc.username, user, err, tc.user, tc.err)
		}
	}
}

// FuzzParseUsername checks that any username the wire can carry is either
// refused or splits into an expiry and user that rebuild it exactly.
func FuzzParseUsername(f *testing.F) {
	secret := []byte("0123456789abcdef")
	seed, _ := Credentials(secret, "tech-alice", time.Unix(1893456000, 0))
	for _, s := range []string{seed, "alice", "1:", ":x", "1893456000:a:b", "0x10:a", "1e9:a", ""} {
		f.Add(s)
	}
	now := time.Unix(1_000_000_000, 0)
	f.Fuzz(func(t *testing.T, username string) {
		user, expiry, err := parseUsername(username, now)
		if errors.Is(err, errUsernameForm) {
			return
		}
		if rebuilt := strconv.FormatInt(expiry.Unix(), 10) + ":" + user; rebuilt != username {
			t.Fatalf("parsed %q as %v + %q, which rebuilds as %q", username, expiry.Unix(), user, rebuilt)
		}
		if (err == nil) != expiry.After(now) {
			t.Fatalf("%q: err %v with expiry %v and now %v", username, err, expiry, now)
		}
		again, _ := Credentials(secret, user, expiry)
		if again != username {
			t.Fatalf("Credentials rebuilds %q as %q", username, again)
		}
	})
}
