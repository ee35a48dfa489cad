package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// What brokers exchange to converge, besides the Digest: lists of
// Versions (one digest bucket's records), lists of Keys (the records one
// broker wants) and lists of Records (the records themselves). Each
// travels as JSON; the Decode functions are strict (unknown fields,
// trailing data, out-of-range values and oversized lists are refused) and
// validate every element, because the bytes come from another broker.

// Limits on what one exchange message may hold.
const (
	// MaxRecords is the most records one Import or DecodeRecords takes.
	MaxRecords = 4096
	// MaxKeys is the most keys or versions one list may hold: a digest
	// bucket of a store of 16 million records.
	MaxKeys = 1 << 16
	// MaxHistoryItems is the most history items one machine record may
	// carry; an importer keeps its own HistoryLimit newest.
	MaxHistoryItems = 10_000
	// MaxKeysPerTechnician bounds the keys bound to one technician.
	MaxKeysPerTechnician = 1000
	// MaxUses bounds the uses granted by a token, and each broker's count.
	MaxUses = 1_000_000
	// maxBrokers bounds the entries of a token's use counter.
	maxBrokers = 1000
	maxText    = 4096
)

// Record is one replicated record as it travels between brokers: its key
// and exactly one payload, the one its kind names.
type Record struct {
	Key
	Machine    *MachineRecord    `json:"machine,omitempty"`
	Client     *ClientRecord     `json:"client,omitempty"`
	Token      *TokenRecord      `json:"token,omitempty"`
	Technician *TechnicianRecord `json:"technician,omitempty"`
	Admin      *AdminRecord      `json:"admin,omitempty"`
	Job        *JobRecord        `json:"job,omitempty"`
	// Removal is new in protocol 1's second release: brokers of the
	// first refuse a batch that carries one (see README, "Rolling
	// upgrades").
	Removal *RemovalRecord `json:"removal,omitempty"`
	// Release, ReleaseKey and Rollout are new in 0.3.0: brokers before
	// it refuse a batch that carries one.
	Release    *ReleaseRecord    `json:"release,omitempty"`
	ReleaseKey *ReleaseKeyRecord `json:"release_key,omitempty"`
	Rollout    *RolloutRecord    `json:"rollout,omitempty"`
	// Policy is new in 0.4.0: brokers before it refuse a batch that
	// carries one.
	Policy *PolicyRecord `json:"policy,omitempty"`
}

// MachineRecord is a machine as it travels between brokers: the
// enrolment, last_seen, the latest check-in with its snapshot exactly as
// stored, and the history. The fields a broker derives from the snapshot
// (OS, agent version, pending updates…) are not sent: the importer derives
// them again; only when each pending update was first seen is sent,
// keyed by the update ID in lower case.
type MachineRecord struct {
	Name       string    `json:"name"`
	Client     string    `json:"client"`
	EnrolledAt time.Time `json:"enrolled_at"`
	// Hostname is the host name given at enrolment; it is sent only until
	// the first check-in, after which the snapshot's is used.
	Hostname  string               `json:"hostname,omitempty"`
	LastSeen  *time.Time           `json:"last_seen,omitempty"`
	CheckIn   *CheckInMeta         `json:"check_in,omitempty"`
	FirstSeen map[string]time.Time `json:"first_seen,omitempty"`
	Snapshot  json.RawMessage      `json:"snapshot,omitempty"`
	History   []wire.HistoryItem   `json:"history,omitempty"` // newest first
	// LastUpdate is the machine's last update report (new in 0.3.0);
	// copies keep the one with the later At.
	LastUpdate *wire.UpdateReport `json:"last_update,omitempty"`
}

// ImportResult says what an Import did.
type ImportResult struct {
	// Applied counts the records that changed something here.
	Applied int
	// Unchanged counts the records that were not newer than ours in any
	// part, and tombstones past their retention.
	Unchanged int
	// Deferred lists the records stamped later than this broker's clock
	// allows (Config.MaxClockSkew), and the releases signed by a key
	// this broker does not know yet (its fleet key, or the rotation to
	// that key, has not arrived). They were not applied; a later
	// exchange offers them again.
	Deferred []Key
	// Refused counts the releases left out because their signature does
	// not verify with the fleet key they name, or a retired key signed a
	// version after the one that retired it (counted in Unchanged too).
	Refused int
}

// DecodeRecords decodes and validates a JSON list of records.
func DecodeRecords(data []byte) ([]Record, error) {
	return decodeList[Record](data, MaxRecords, "record")
}

// DecodeVersions decodes and validates a JSON list of versions.
func DecodeVersions(data []byte) ([]Version, error) {
	return decodeList[Version](data, MaxKeys, "version")
}

// DecodeKeys decodes and validates a JSON list of keys.
func DecodeKeys(data []byte) ([]Key, error) {
	return decodeList[Key](data, MaxKeys, "key")
}

// validator is a pointer to a list element that can check itself.
type validator[T any] interface {
	*T
	Validate() error
}

// decodeList decodes a JSON list strictly, refuses more than limit
// elements and validates each one. what names one element in errors
// ("record 3: ...", "4097 records, limit 4096").
func decodeList[T any, P validator[T]](data []byte, limit int, what string) ([]T, error) {
	var list []T
	if err := decodeStrict(data, &list); err != nil {
		return nil, err
	}
	if len(list) > limit {
		return nil, malformed("%d %ss, limit %d", len(list), what, limit)
	}
	for i := range list {
		if err := P(&list[i]).Validate(); err != nil {
			return nil, fmt.Errorf("%s %d: %w", what, i, err)
		}
	}
	return list, nil
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return malformed("%v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return malformed("data after the value")
	}
	return nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
