package cluster

import (
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Meta is what a broker tells the cluster about itself. It travels in
// memberlist's node metadata, which is capped at memberlist.MetaMaxSize
// (512 bytes) and re-gossiped whole on every change, so it holds only what
// every broker needs to list its peers; anything larger is fetched from
// the broker's HTTP endpoint.
type Meta struct {
	Name        string   // display name; empty means the node name
	Region      string   // region label
	PeerID      string   // libp2p peer ID of the broker's bridge host
	HTTP        string   // console/API address
	Bridge      []string // bridge multiaddrs; see BridgeTruncated
	Agents      int      // agents bridged now (coarse; see UpdateMeta)
	Technicians int      // technicians bridged now

	// BridgeTruncated is set when Bridge did not fit the 512-byte budget:
	// the encoder kept as many addresses as fit, in order, and dropped the
	// rest. A broker that sees it fetches the full list over HTTP.
	BridgeTruncated bool
}

const (
	metaVersion       = 1
	metaFlagTruncated = 1 << 0
	// metaFlagNotes says the broker reads machine notes: note messages
	// and push/pull state version 2. Decoders of earlier releases ignore
	// flags they do not know, so it needs no new metadata version.
	metaFlagNotes = 1 << 1
	// maxMetaField bounds any single string of Meta on decode.
	maxMetaField = memberlist.MetaMaxSize
)

// encodeMeta encodes m into at most memberlist.MetaMaxSize bytes. Bridge
// addresses that do not fit are dropped from the end (dropped reports how
// many); if the rest alone does not fit, it returns ErrTooLarge.
//
// Layout: version, flags (metaFlagNotes always), Name, Region, PeerID, HTTP (length-prefixed),
// Agents, Technicians (uvarints), bridge count, bridges.
func encodeMeta(m Meta) (b []byte, dropped int, err error) {
	head := []byte{metaVersion, metaFlagNotes}
	head = appendString(head, m.Name)
	head = appendString(head, m.Region)
	head = appendString(head, m.PeerID)
	head = appendString(head, m.HTTP)
	head = appendUint(head, m.Agents)
	head = appendUint(head, m.Technicians)
	if m.BridgeTruncated {
		head[1] |= metaFlagTruncated
	}
	for keep := len(m.Bridge); keep >= 0; keep-- {
		b = appendUint(append([]byte(nil), head...), keep)
		for _, a := range m.Bridge[:keep] {
			b = appendString(b, a)
		}
		if len(b) <= memberlist.MetaMaxSize {
			if keep < len(m.Bridge) {
				b[1] |= metaFlagTruncated
			}
			return b, len(m.Bridge) - keep, nil
		}
	}
	return nil, 0, fmt.Errorf("%w: metadata without bridge addresses is %d bytes, limit %d",
		ErrTooLarge, len(b), memberlist.MetaMaxSize)
}

func appendUint(b []byte, n int) []byte {
	return appendUvarint(b, uint64(max(n, 0)))
}

// metaNotes reports whether encoded metadata b carries metaFlagNotes.
func metaNotes(b []byte) bool {
	return len(b) >= 2 && b[0] == metaVersion && b[1]&metaFlagNotes != 0
}

// decodeMeta parses what encodeMeta produced.
func decodeMeta(b []byte) (Meta, error) {
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != metaVersion {
		return Meta{}, fmt.Errorf("metadata version %d, want %d", v, metaVersion)
	}
	var m Meta
	flags := r.byte()
	m.BridgeTruncated = flags&metaFlagTruncated != 0
	m.Name = r.string(maxMetaField)
	m.Region = r.string(maxMetaField)
	m.PeerID = r.string(maxMetaField)
	m.HTTP = r.string(maxMetaField)
	m.Agents = int(min(r.uvarint(), 1<<31-1))
	m.Technicians = int(min(r.uvarint(), 1<<31-1))
	if n := r.count(1); n > 0 {
		m.Bridge = make([]string, n)
		for i := range m.Bridge {
			m.Bridge[i] = r.string(maxMetaField)
		}
	}
	if err := r.done(); err != nil {
		return Meta{}, fmt.Errorf("metadata: %w", err)
	}
	return m, nil
}
