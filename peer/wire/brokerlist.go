package wire

import (
	"errors"
	"fmt"
)

// Bounds of the broker lists brokers send agents (HelloReply,
// HeartbeatAck). A cluster has a handful of brokers, each with a few
// bridge addresses (QUIC, TCP, WebSocket, per interface); every agent
// keeps the list it is sent, on disk and in memory, so a list far beyond
// that is refused rather than kept.
const (
	// MaxBrokers bounds the brokers one list names, and the brokers one
	// list says have left.
	MaxBrokers = 64
	// MaxBrokerAddrs bounds the bridge addresses of one broker.
	MaxBrokerAddrs = 16
	// maxBrokerField bounds, in bytes, each string of a listed broker: its
	// peer ID, one address, its name, region, HTTP or gossip address.
	maxBrokerField = 256
	// maxHeartbeatMS bounds the heartbeat interval a broker may ask for:
	// one hour.
	maxHeartbeatMS = 3600 * 1000
)

// MaxReconnectSpreadMS bounds HelloReply.ReconnectSpreadMS: ten minutes.
const MaxReconnectSpreadMS = 10 * 60 * 1000

// validBrokerList checks the bounds of a broker list and of the peer IDs
// of brokers that left. What names no peer or no address is left for the
// receiver to skip: older brokers may list such entries.
func validBrokerList(what string, brokers []BrokerInfo, left []string) error {
	if len(brokers) > MaxBrokers {
		return fmt.Errorf("%s: %d brokers, at most %d", what, len(brokers), MaxBrokers)
	}
	if len(left) > MaxBrokers {
		return fmt.Errorf("%s: %d brokers left, at most %d", what, len(left), MaxBrokers)
	}
	for i := range brokers {
		if err := brokers[i].Validate(); err != nil {
			return fmt.Errorf("%s: broker %d: %w", what, i, err)
		}
	}
	for i, id := range left {
		if id == "" || len(id) > maxBrokerField {
			return fmt.Errorf("%s: left broker %d: peer ID of %d bytes, want 1-%d", what, i, len(id), maxBrokerField)
		}
	}
	return nil
}

// Validate checks the bounds a broker list puts on each broker in it: at
// most MaxBrokerAddrs addresses and 256-byte strings. A broker building a
// list leaves out what fails it.
func (b *BrokerInfo) Validate() error {
	if len(b.Addrs) > MaxBrokerAddrs {
		return fmt.Errorf("%d addresses, at most %d", len(b.Addrs), MaxBrokerAddrs)
	}
	for _, f := range []string{b.PeerID, b.HTTP, b.Name, b.Region, b.Gossip, b.WANGossip} {
		if len(f) > maxBrokerField {
			return errors.New("a field longer than 256 bytes")
		}
	}
	for _, a := range b.Addrs {
		if len(a) > maxBrokerField {
			return fmt.Errorf("an address of %d bytes, at most %d", len(a), maxBrokerField)
		}
	}
	if b.STUNPort < 0 || b.STUNPort > 65535 {
		return fmt.Errorf("stun_port %d out of range", b.STUNPort)
	}
	return nil
}
