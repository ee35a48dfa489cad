package bridge

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/readymesh/readymesh/peer/wire"
)

// ResolveBroker turns what a user typed for a broker into a BrokerInfo: the
// path of a broker.json file, or one or more multiaddrs ending in
// /p2p/PEER_ID, separated by commas.
func ResolveBroker(s string) (wire.BrokerInfo, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "/") || fileExists(s) {
		raw, err := os.ReadFile(s)
		if err != nil {
			return wire.BrokerInfo{}, fmt.Errorf("broker %q is neither a broker.json file nor a multiaddr ending in /p2p/PEER_ID: %w", s, err)
		}
		var info wire.BrokerInfo
		if err := json.Unmarshal(raw, &info); err != nil {
			return wire.BrokerInfo{}, fmt.Errorf("broker file %s: %w", s, err)
		}
		if _, err := AddrInfo(info); err != nil {
			return wire.BrokerInfo{}, fmt.Errorf("broker file %s: %w", s, err)
		}
		return info, nil
	}
	var info wire.BrokerInfo
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		a, err := ma.NewMultiaddr(part)
		if err != nil {
			return wire.BrokerInfo{}, fmt.Errorf("broker %q is neither a broker.json file that exists nor a multiaddr: %w", part, err)
		}
		_, id := peer.SplitAddr(a)
		if id == "" {
			return wire.BrokerInfo{}, fmt.Errorf("broker address %q has no /p2p/PEER_ID: the broker's identity must be pinned", part)
		}
		if info.PeerID != "" && info.PeerID != id.String() {
			return wire.BrokerInfo{}, fmt.Errorf("broker addresses name two peers, %s and %s", info.PeerID, id)
		}
		info.PeerID = id.String()
		info.Addrs = append(info.Addrs, part)
	}
	if _, err := AddrInfo(info); err != nil {
		return wire.BrokerInfo{}, err
	}
	return info, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}
