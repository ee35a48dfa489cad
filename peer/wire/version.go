package wire

import "fmt"

// Versions is the range of protocol versions a peer speaks: the request
// that opens each conversation (Enroll, Hello, Login, Request) carries its
// sender's, and the broker refuses a sender whose range does not meet its
// own (CheckVersions). Peers of the first release send none: both zero
// mean 1–1. Older peers ignore the fields, so adding them broke nothing.
type Versions struct {
	Proto    int `json:"proto,omitempty"`     // the newest version the sender speaks
	MinProto int `json:"min_proto,omitempty"` // the oldest
}

// OurVersions is this build's range: MinProtocol to Protocol.
func OurVersions() Versions { return Versions{Proto: Protocol, MinProto: MinProtocol} }

// span returns the range, reading zeros as a first-release peer's 1.
func (v Versions) span() (lo, hi int) {
	hi = max(v.Proto, 1)
	lo = v.MinProto
	if lo <= 0 || lo > hi {
		lo = hi
	}
	return lo, hi
}

func (v Versions) String() string {
	lo, hi := v.span()
	if lo == hi {
		return fmt.Sprint(hi)
	}
	return fmt.Sprintf("%d–%d", lo, hi)
}

// CheckVersions refuses a peer whose range does not meet ours, with a
// message naming both and what to upgrade: peer names the peer ("agent
// 0.1.0", "meshctl"), self this side ("broker 0.2.0").
func CheckVersions(theirs Versions, peer, self string) *Error {
	return checkVersions(theirs, OurVersions(), peer, self)
}

func checkVersions(theirs, ours Versions, peer, self string) *Error {
	plo, phi := theirs.span()
	olo, ohi := ours.span()
	switch {
	case phi < olo:
		return Errorf(CodeVersion, "%s speaks protocol %s, and %s speaks %s: upgrade the %s",
			peer, theirs, self, ours, peer)
	case plo > ohi:
		return Errorf(CodeVersion, "%s speaks protocol %s, newer than %s's %s: upgrade the brokers first, then agents and technicians",
			peer, theirs, self, ours)
	}
	return nil
}
