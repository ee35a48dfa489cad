package bridge

import (
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/wire"
)

// Every readymesh host announces its release and protocol version in
// libp2p identify's agent version, "readymesh/0.2.0 protocol/1", so a
// broker can list the version of each broker it meets (meshctl brokers)
// without anything in the size-capped gossip metadata, which brokers of
// earlier releases would refuse to decode. Hosts of those releases
// announced plain "readymesh".

// uaPrefix starts every readymesh agent version.
const uaPrefix = "readymesh"

// UserAgent is this build's identify agent version.
func UserAgent() string {
	return fmt.Sprintf("%s/%s protocol/%d", uaPrefix, buildinfo.Version, wire.Protocol)
}

// AgentVersion turns an identify agent version into what meshctl brokers
// shows: "0.2.0 protocol 1", "before 0.2.0" for a readymesh host that
// announced none, or "" for anything else.
func AgentVersion(ua string) string {
	rest, ok := strings.CutPrefix(ua, uaPrefix)
	switch {
	case !ok:
		return ""
	case rest == "":
		return "before 0.2.0"
	}
	v, proto, _ := strings.Cut(strings.TrimPrefix(rest, "/"), " protocol/")
	if proto == "" {
		return v
	}
	return v + " protocol " + proto
}

// PeerVersion is AgentVersion of what h's peerstore holds for peer id,
// "" when h has not identified it.
func PeerVersion(h host.Host, id string) string {
	p, err := peer.Decode(id)
	if err != nil {
		return ""
	}
	ua, err := h.Peerstore().Get(p, "AgentVersion")
	if err != nil {
		return ""
	}
	s, _ := ua.(string)
	return AgentVersion(s)
}
