package release

import "strings"

// CompareVersions compares two agent versions and returns -1, 0 or +1 as a
// is older than, equal to or newer than b.
//
// A version is parsable when, after an optional leading "v" or "V", it is
// dot-separated decimal numbers ("1.10.0"), optionally followed by "-" and a
// pre-release suffix ("1.2.0-rc1") and by "+" and build metadata, which is
// ignored. Parsable versions compare number by number ("1.10.0" > "1.9.3");
// a missing number counts as zero ("1.2" == "1.2.0"). A pre-release comes
// before its release ("1.2.0-rc1" < "1.2.0"); two pre-releases compare
// piece by piece, runs of digits as numbers and other text byte-wise
// ("rc2" < "rc10").
//
// If either version is not parsable ("", "dev", "1.x"), the two strings are
// compared byte-wise. That keeps the result defined, but it is not a
// meaningful age: a release's versions must therefore be parsable (Parse
// refuses others), and the broker's readiness rules ignore unparsable
// agent versions when they look for the newest.
func CompareVersions(a, b string) int {
	va, okA := parseVersion(a)
	vb, okB := parseVersion(b)
	if !okA || !okB {
		return strings.Compare(a, b)
	}
	if c := compareCore(va.core, vb.core); c != 0 {
		return c
	}
	return comparePre(va.pre, vb.pre)
}

// ComparableVersion reports whether v is parsable, so that
// CompareVersions orders it by its numbers rather than byte-wise.
func ComparableVersion(v string) bool {
	_, ok := parseVersion(v)
	return ok
}

// version is a parsed version. Its fields are substrings of the input.
type version struct {
	core string // "1.10.0"
	pre  string // "rc1"; empty for a release
}

func parseVersion(s string) (version, bool) {
	if s != "" && (s[0] == 'v' || s[0] == 'V') {
		s = s[1:]
	}
	if i := strings.IndexByte(s, '+'); i >= 0 {
		if i == len(s)-1 {
			return version{}, false
		}
		s = s[:i]
	}
	core, pre, hasPre := strings.Cut(s, "-")
	if hasPre && pre == "" || !validCore(core) {
		return version{}, false
	}
	return version{core: core, pre: pre}, true
}

// validCore reports whether s is one or more runs of digits separated by
// single dots.
func validCore(s string) bool {
	if s == "" {
		return false
	}
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && digits > 0:
			digits = 0
		default:
			return false
		}
	}
	return digits > 0
}

// compareCore compares two valid dotted cores number by number.
func compareCore(a, b string) int {
	for a != "" || b != "" {
		var x, y string
		x, a = nextField(a)
		y, b = nextField(b)
		if c := compareDigits(x, y); c != 0 {
			return c
		}
	}
	return 0
}

// nextField splits the first dotted field off s; an empty s yields "0".
func nextField(s string) (field, rest string) {
	if s == "" {
		return "0", ""
	}
	field, rest, _ = strings.Cut(s, ".")
	return field, rest
}

// compareDigits compares two runs of decimal digits as numbers of any size.
func compareDigits(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// comparePre compares pre-release suffixes; the empty suffix (a release)
// is the largest.
func comparePre(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "":
		return 1
	case b == "":
		return -1
	}
	return compareNatural(a, b)
}

// compareNatural compares runs of digits as numbers and everything else
// byte by byte; when one string is a prefix of the other, the shorter is
// smaller.
func compareNatural(a, b string) int {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			x, y := digitRun(a), digitRun(b)
			if c := compareDigits(a[:x], b[:y]); c != 0 {
				return c
			}
			a, b = a[x:], b[y:]
			continue
		}
		if a[0] != b[0] {
			if a[0] < b[0] {
				return -1
			}
			return 1
		}
		a, b = a[1:], b[1:]
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	}
	return 1
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// digitRun returns the length of the run of digits that starts s.
func digitRun(s string) int {
	n := 0
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	return n
}
