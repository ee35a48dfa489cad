package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// t0 is the tests' "now". It is not UTC on purpose in a few places so the
// store's conversion to UTC is exercised.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// logWriter sends store logs through t.Log so they show with -v and on
// failure.
type logWriter struct{ tb testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testConfig is a store in a fresh temporary directory.
func testConfig(tb testing.TB, historyLimit int) Config {
	tb.Helper()
	return Config{
		Path:         filepath.Join(tb.TempDir(), "state", "broker.db"),
		HistoryLimit: historyLimit,
		Logger:       slog.New(slog.NewTextHandler(logWriter{tb}, nil)),
	}
}

// openStore opens cfg and closes the store when the test ends.
func openStore(tb testing.TB, cfg Config) *Store {
	tb.Helper()
	s, err := Open(cfg)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func newStore(tb testing.TB) (*Store, Config) {
	tb.Helper()
	cfg := testConfig(tb, 0)
	return openStore(tb, cfg), cfg
}

// reopen closes s and opens the same file again.
func reopen(tb testing.TB, s *Store, cfg Config) *Store {
	tb.Helper()
	if err := s.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	return openStore(tb, cfg)
}

func mustClient(tb testing.TB, s *Store, name string) {
	tb.Helper()
	if _, err := s.CreateClient(name, t0); err != nil {
		tb.Fatalf("CreateClient(%q): %v", name, err)
	}
}

// mustToken stores a token for client and returns the hash of its secret.
func mustToken(tb testing.TB, s *Store, client string, uses int, expires time.Time) string {
	tb.Helper()
	hash := wire.HashSecret(wire.NewSecret())
	t := Token{Client: client, UsesLeft: uses, Uses: uses, ExpiresAt: expires,
		CreatedBy: "admin", CreatedAt: t0}
	if err := s.CreateToken(hash, t); err != nil {
		tb.Fatalf("CreateToken(%s): %v", client, err)
	}
	return hash
}

func mustEnroll(tb testing.TB, s *Store, hash, id, name string) Machine {
	tb.Helper()
	m, err := s.Enroll(EnrollRequest{TokenHash: hash, MachineID: id, Name: name,
		Hostname: name + ".lan", Now: t0})
	if err != nil {
		tb.Fatalf("Enroll(%s, %s): %v", id, name, err)
	}
	return m
}

// enrolled returns a store with client "acme" and the given machines
// enrolled in it.
func enrolled(tb testing.TB, historyLimit int, ids ...string) (*Store, Config) {
	tb.Helper()
	cfg := testConfig(tb, historyLimit)
	s := openStore(tb, cfg)
	mustClient(tb, s, "acme")
	hash := mustToken(tb, s, "acme", len(ids)+1, t0.Add(time.Hour))
	for _, id := range ids {
		mustEnroll(tb, s, hash, id, "name-"+id)
	}
	return s, cfg
}

// testSnapshot is a realistic snapshot of a Debian server: about 40
// packages, a few pending updates and a little session history, about 3.3 KB
// of JSON. variant changes the content without changing its shape.
func testSnapshot(host string, variant int) wire.Snapshot {
	approved := t0.Add(-2 * time.Hour)
	approvalEnds := t0.Add(22 * time.Hour)
	s := wire.Snapshot{
		CollectedAt:  t0.Add(time.Duration(variant) * time.Second),
		Hostname:     host,
		BootID:       fmt.Sprintf("8d3c1f2e-5b7a-4c1d-9e0f-%012d", variant/1000),
		OS:           wire.OS{Family: "linux", ID: "debian", Name: "Debian GNU/Linux 12 (bookworm)", Version: "12", Kernel: "6.1.0-18-amd64", Arch: "amd64"},
		AgentVersion: "0.4.2",
		Runtime:      wire.RuntimeConfig{CheckInIntervalSec: 900, HeartbeatSec: 15, ConsentPolicy: wire.ConsentWindow},
		Approval:     wire.Approval{Required: true, LastApprovedAt: &approved, ExpiresAt: &approvalEnds, ApprovedBy: "j.doe"},
		Addresses:    []string{"10.20.30.40/24", "fe80::5054:ff:fe12:3456/64", "192.168.122.10/24"},
		Commands: []wire.CommandRecord{
			{At: t0.Add(-90 * time.Minute), Command: "systemctl status nginx", ExitCode: 0, Session: "s-01"},
			{At: t0.Add(-89 * time.Minute), Command: "journalctl -u nginx --since -1h", ExitCode: 0, Session: "s-01"},
		},
		Sessions: []wire.SessionRecord{{ID: "s-01", Technician: "j.doe", Mode: wire.ModeInteractive,
			Path: "direct-quic", Start: t0.Add(-91 * time.Minute), End: t0.Add(-80 * time.Minute)}},
		CollectorErrs: []wire.CollectorError{{Collector: "smart", Error: "smartctl not installed"}},
	}
	for i := 0; i < 40; i++ {
		s.Packages = append(s.Packages, wire.Package{
			Name:    fmt.Sprintf("%s-%02d", pkgNames[i%len(pkgNames)], i),
			Version: fmt.Sprintf("1.%d.%d-%d+deb12u%d", i%7, variant%13, i%3, i%5),
		})
	}
	for i, id := range []string{"openssl", "libssl3", "linux-image-amd64", "tzdata"} {
		s.PendingUpdates = append(s.PendingUpdates, wire.PendingUpdate{
			ID: id, Version: fmt.Sprintf("3.0.%d-1~deb12u%d", 11+i, 2+variant%3),
			Source: "apt", Security: i < 2,
		})
	}
	return s
}

var pkgNames = []string{"adduser", "apt", "base-files", "bash", "coreutils", "curl",
	"dpkg", "e2fsprogs", "gzip", "libc6", "nginx", "openssh-server", "procps", "systemd"}

func checkIn(id string, seq uint64, snap wire.Snapshot) *wire.CheckIn {
	return &wire.CheckIn{MachineID: id, Seq: seq, Reason: wire.ReasonInterval, Snapshot: snap}
}

func mustCheckIn(tb testing.TB, s *Store, ci *wire.CheckIn, now time.Time) CheckInResult {
	tb.Helper()
	res, err := s.CheckIn(ci, now)
	if err != nil {
		tb.Fatalf("CheckIn(%s, seq %d): %v", ci.MachineID, ci.Seq, err)
	}
	return res
}

// state is everything a store holds: every key and value in the file,
// nested buckets included, and the in-memory machine index.
type state struct {
	raw   map[string]string
	index map[string]Machine
}

func capture(tb testing.TB, s *Store) state {
	tb.Helper()
	st := state{raw: map[string]string{}, index: map[string]Machine{}}
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			path := prefix + "/" + fmt.Sprintf("%q", k)
			if v == nil {
				return walk(path, b.Bucket(k))
			}
			st.raw[path] = string(v)
			return nil
		})
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			st.raw[string(name)] = "(bucket)"
			return walk(string(name), b)
		})
	})
	if err != nil {
		tb.Fatalf("capture: %v", err)
	}
	for _, m := range s.Machines() {
		st.index[m.ID] = m
	}
	return st
}

// assertSame fails the test if the store's state differs from before.
func assertSame(tb testing.TB, before, after state) {
	tb.Helper()
	var diffs []string
	for k, v := range before.raw {
		if w, ok := after.raw[k]; !ok {
			diffs = append(diffs, "removed "+k)
		} else if v != w {
			diffs = append(diffs, fmt.Sprintf("changed %s:\n  was %s\n  now %s", k, v, w))
		}
	}
	for k, v := range after.raw {
		if _, ok := before.raw[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("added %s = %s", k, v))
		}
	}
	if !reflect.DeepEqual(before.index, after.index) {
		diffs = append(diffs, fmt.Sprintf("index changed:\n  was %s\n  now %s", jsonOf(before.index), jsonOf(after.index)))
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		tb.Errorf("store state changed:\n%s", strings.Join(diffs, "\n"))
	}
}

// assertUnchanged compares the store's current state with before.
func assertUnchanged(tb testing.TB, s *Store, before state) {
	tb.Helper()
	assertSame(tb, before, capture(tb, s))
}

func jsonOf(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("(unencodable: %v)", err)
	}
	return string(raw)
}

// sameJSON reports whether a and b encode to the same JSON.
func sameJSON(a, b any) bool {
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	return bytes.Equal(ra, rb)
}

func historySeqs(tb testing.TB, s *Store, id string) []uint64 {
	tb.Helper()
	items, err := s.History(id)
	if err != nil {
		tb.Fatalf("History(%s): %v", id, err)
	}
	seqs := make([]uint64, len(items))
	for i, it := range items {
		seqs[i] = it.Seq
	}
	return seqs
}
