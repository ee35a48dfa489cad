package collect

import (
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The Windows collectors read what installers and the system wrote into
// the registry and what the Windows Update Agent says. Any installer can
// write anything there, so every string is cleaned and cut to a bound
// before it goes into a snapshot, whose encoded size the broker limits
// (wire.MaxSnapshot).

// Budgets for the lists the Windows collectors report, in bytes of JSON
// as a check-in encodes them. Together they stay well below
// wire.MaxSnapshot (1 MiB) whatever the characters: bounding the strings
// alone would not, since JSON writes some characters ("<", U+2028) as six
// bytes.
const (
	maxPackagesJSON = 384 << 10
	maxUpdatesJSON  = 192 << 10
)

// jsonLen returns the length of v's JSON encoding in a list: with its
// separating comma.
func jsonLen(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 1 << 30 // cannot happen for the wire types; never fits
	}
	return len(b) + 1
}

// cleanText makes s fit for a snapshot: invalid UTF-8 becomes U+FFFD,
// control characters (NUL, line breaks, escapes) are dropped, surrounding
// space is trimmed, and the result is cut to at most max bytes on a rune
// boundary, ending in "…" when it was cut.
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if cut <= 0 {
		return ""
	}
	return strings.TrimSpace(s[:cut]) + ellipsis
}
