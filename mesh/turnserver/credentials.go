package turnserver

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN REST credentials are defined as HMAC-SHA1.
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Credentials returns TURN REST-style time-limited credentials for user:
// the username is "<unix expiry>:<user>" and the password is
// base64(HMAC-SHA1(secret, username)). A server with the same secret accepts
// them until expiry and refuses them after; nothing is stored, so the broker
// can hand them out over signalling to any peer it admits.
//
// The expiry bounds how long a leaked credential can start new allocations.
// An allocation made before expiry lasts while its client refreshes it;
// the refreshes are authenticated with the same credential and so also
// stop at expiry: choose an expiry that covers the longest session, or mint new
// credentials for long ones.
func Credentials(secret []byte, user string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + user
	return username, restPassword(secret, username)
}

func restPassword(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username)) // hash.Hash writes never fail
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Reasons parseUsername refuses a username.
var (
	errUsernameForm = errors.New(`username is not "<unix expiry>:<user>"`)
	errExpired      = errors.New("credentials expired")
)

// maxUsernameLen bounds what the server parses; STUN allows 513 bytes.
const maxUsernameLen = 513

// parseUsername splits a TURN REST username into its expiry and user and
// checks it has not expired at now.
func parseUsername(username string, now time.Time) (user string, expiry time.Time, err error) {
	if len(username) > maxUsernameLen {
		return "", time.Time{}, errUsernameForm
	}
	ts, user, ok := strings.Cut(username, ":")
	if !ok || user == "" {
		return "", time.Time{}, errUsernameForm
	}
	// Only the canonical decimal form Credentials writes: no sign, no
	// leading zeros.
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 || strconv.FormatInt(sec, 10) != ts {
		return "", time.Time{}, errUsernameForm
	}
	expiry = time.Unix(sec, 0)
	if !now.Before(expiry) {
		return user, expiry, errExpired
	}
	return user, expiry, nil
}
