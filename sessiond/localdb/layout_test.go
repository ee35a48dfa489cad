package localdb

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/readymesh/readymesh/peer/wire"
)

// TestLayout pins agent.db's on-disk layout: bucket and key names are the
// file format, so an agent upgraded in place still finds its enrolment,
// sequence, consent, used grants, job records and history.
func TestLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, err := range []error{
		d.SetEnrolment(Enrolment{MachineID: "m1"}),
		func() error { _, err := d.NextSeq(); return err }(),
		d.SetLast(LastCheckIn{Seq: 1}),
		d.SetConsent(ConsentState{Policy: wire.ConsentWindow}),
		d.AddCommand(wire.CommandRecord{Command: "true"}),
		d.MarkGrantUsed("s1", now.Add(time.Hour)),
		func() error { _, _, err := d.StartJob("j1", now); return err }(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	got := rawLayout(t, path)
	want := map[string][]string{
		"agent":  {"consent", "enrolment", "history", "last_check_in", "seq"},
		"grants": {"s1"},
		"jobs":   {"j1"},
	}
	for b, keys := range want {
		if !slices.Equal(got[b], keys) {
			t.Errorf("bucket %s holds %v, want %v", b, got[b], keys)
		}
	}
	if len(got) != len(want) {
		t.Errorf("buckets %v, want %v", got, want)
	}
}

// rawLayout lists every bucket's keys (sorted, as bbolt keeps them) with
// bbolt itself, not through DB.
func rawLayout(t *testing.T, path string) map[string][]string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]string{}
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			keys := []string{}
			b.ForEach(func(k, _ []byte) error {
				keys = append(keys, string(k))
				return nil
			})
			out[string(name)] = keys
			return nil
		})
	})
	return out
}
