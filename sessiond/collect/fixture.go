package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// maxFixture bounds a fixture file; the broker's own snapshot limit is
// smaller, so a larger file could never be checked in anyway.
const maxFixture = 16 << 20

// fixture is a Collector that reports a machine described in a JSON file.
type fixture struct {
	path string
	raw  []byte // decoded afresh at each Collect, so callers get their own copy
}

var _ Collector = (*fixture)(nil)

// Fixture returns a collector that stands in for all the machine
// collectors, reporting the machine described by the JSON file at path, in
// wire.Snapshot shape. Demos and tests use it to play Windows or macOS
// machines on Linux. The file is read and checked now: unknown fields, a
// missing hostname or an os.family other than linux, windows or darwin are
// errors.
//
// The fixture replaces everything the snapshot holds, except that the agent
// fields it leaves out (agent_version empty or absent; runtime or approval
// absent) keep what earlier collectors set. So run it after Agent to take
// those from the Config:
//
//	fx, err := collect.Fixture("windows.json")
//	...
//	s := collect.Collect(ctx, []collect.Collector{collect.Agent(cfg), fx}, now)
//
// The fixture's collected_at is ignored (Collect sets it); its
// collector_errors are appended to the snapshot's, so a demo can show a
// failing collector.
func Fixture(path string) (Collector, error) {
	raw, err := readLimited(path, maxFixture)
	if err != nil {
		return nil, fmt.Errorf("collect: fixture: %w", err)
	}
	if _, err := decodeFixture(raw); err != nil {
		return nil, fmt.Errorf("collect: fixture %s: %w", path, err)
	}
	return &fixture{path: path, raw: raw}, nil
}

func (f *fixture) Name() string { return "fixture" }

// Collect implements Collector.
func (f *fixture) Collect(_ context.Context, s *wire.Snapshot) error {
	doc, err := decodeFixture(f.raw)
	if err != nil {
		return fmt.Errorf("fixture %s: %w", f.path, err)
	}
	prev := *s
	*s = doc.snap
	s.CollectedAt = prev.CollectedAt
	s.CollectorErrs = append(prev.CollectorErrs, doc.snap.CollectorErrs...)
	if s.AgentVersion == "" {
		s.AgentVersion = prev.AgentVersion
	}
	if !doc.hasRuntime {
		s.Runtime = prev.Runtime
	}
	if !doc.hasApproval {
		s.Approval = prev.Approval
	}
	return nil
}

// fixtureDoc is a decoded fixture and which agent fields it sets.
type fixtureDoc struct {
	snap        wire.Snapshot
	hasRuntime  bool
	hasApproval bool
}

// decodeFixture decodes and checks a fixture file's contents.
func decodeFixture(raw []byte) (fixtureDoc, error) {
	var doc fixtureDoc
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc.snap); err != nil {
		return doc, fmt.Errorf("decode: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return doc, errors.New("decode: data after the JSON object")
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return doc, fmt.Errorf("decode: %w", err)
	}
	_, doc.hasRuntime = keys["runtime"]
	_, doc.hasApproval = keys["approval"]
	return doc, checkFixture(doc.snap)
}

// checkFixture applies the broker's own validation, filling in the fields
// that are only known at collection time.
func checkFixture(s wire.Snapshot) error {
	s.CollectedAt = time.Unix(1, 0)
	if s.AgentVersion == "" {
		s.AgentVersion = "fixture"
	}
	return s.Validate()
}

// readLimited reads the file at path, failing if it is larger than limit.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
