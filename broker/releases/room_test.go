package releases

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// The room's own tests run it on a real store, without a network: the
// sweep's ages, and the update orders the queue asks for. Transfers are
// tested through whole brokers (package broker's releases_test.go).

var t0 = time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)         { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// alone is a broker without a cluster, whose keys are nobody's.
type alone struct{}

func (alone) IsMember(string) bool                        { return false }
func (alone) Brokers() []peer.AddrInfo                    { return nil }
func (alone) Machine(peer.ID) error                       { return errStranger }
func (alone) Technician(peer.ID) (wire.Technician, error) { return wire.Technician{}, errStranger }

// notes records audit entries and replicated keys.
type notes struct {
	mu      sync.Mutex
	entries []wire.AuditEntry
	keys    []store.Key
}

func (n *notes) Add(e wire.AuditEntry)  { n.mu.Lock(); n.entries = append(n.entries, e); n.mu.Unlock() }
func (n *notes) Written(k ...store.Key) { n.mu.Lock(); n.keys = append(n.keys, k...); n.mu.Unlock() }

func newTestRoom(t *testing.T) (*Room, *store.Store, *clock, *notes) {
	t.Helper()
	st := fleettest.Open(t)
	clk := &clock{t: t0}
	n := &notes{}
	r := New(Config{Now: clk.Now}, Deps{Blobs: st, Records: st, Cluster: alone{}, Keys: alone{}, Audit: n, Replication: n})
	t.Cleanup(r.Close)
	return r, st, clk, n
}

// signed is a signed release directory of one binary.
func signed(t *testing.T, key release.SecretKey, version string, data []byte) release.Dir {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, release.BinaryName("linux/amd64")), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := release.Sign(dir, key, release.SignOptions{Version: version, Now: t0}); err != nil {
		t.Fatal(err)
	}
	d, err := release.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newKey(t *testing.T) (release.SecretKey, release.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	pub, err := release.KeygenUnencrypted(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := release.ReadSecretKey(filepath.Join(dir, release.SecretKeyFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	return key, pub
}

// store writes data whole into the store at now, as an upload does.
func storeBlob(t *testing.T, st *store.Store, data []byte, now time.Time) string {
	t.Helper()
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	for off := int64(0); off < int64(len(data)); off += store.BlobChunk {
		end := min(off+store.BlobChunk, int64(len(data)))
		if _, err := st.WriteBlobChunk(sha, int64(len(data)), off, data[off:end], now); err != nil {
			t.Fatal(err)
		}
	}
	return sha
}

var admin = &wire.Technician{Name: "admin", Admin: true}

// TestSweepAges: an upload never published goes a day after its last
// use; the binary of a withdrawn release goes 30 days after the
// withdrawal; a live release's binary stays.
func TestSweepAges(t *testing.T) {
	r, st, clk, _ := newTestRoom(t)
	key, pub := newKey(t)
	if _, werr := r.Trust(admin, &wire.ReleaseKeyArgs{PublicKey: pub.String()}); werr != nil {
		t.Fatal(werr)
	}
	live, gone, orphan := []byte("live release"), []byte("withdrawn release"), []byte("never published")
	liveSHA, goneSHA := storeBlob(t, st, live, t0), storeBlob(t, st, gone, t0)
	orphanSHA := storeBlob(t, st, orphan, t0)
	for v, data := range map[string][]byte{"1.0.0": live, "0.9.0": gone} {
		d := signed(t, key, v, data)
		if _, werr := r.Publish(admin, &wire.PublishArgs{Manifest: d.ManifestBytes, Signature: d.Signature}); werr != nil {
			t.Fatal(werr)
		}
	}
	if _, werr := r.Withdraw(admin, &wire.VersionArgs{Version: "0.9.0"}); werr != nil {
		t.Fatal(werr)
	}
	held := func() []string {
		var out []string
		for _, sha := range []string{liveSHA, goneSHA, orphanSHA} {
			if _, ok := st.BlobHave(sha); ok {
				out = append(out, sha)
			}
		}
		return out
	}
	for _, step := range []struct {
		at   time.Duration
		want []string
	}{
		{23 * time.Hour, []string{liveSHA, goneSHA, orphanSHA}},
		{25 * time.Hour, []string{liveSHA, goneSHA}},
		{29 * 24 * time.Hour, []string{liveSHA, goneSHA}},
		{31 * 24 * time.Hour, []string{liveSHA}},
	} {
		clk.Set(t0.Add(step.at))
		r.Sweep()
		if got := held(); !slices.Equal(got, step.want) {
			t.Errorf("after %v: %d blobs held, want %d", step.at, len(got), len(step.want))
		}
	}
}

// TestOrder: the update order of a published release carries its
// manifest and signature as signed; an unknown release is not found and
// a withdrawn one gone.
func TestOrder(t *testing.T) {
	r, st, _, n := newTestRoom(t)
	key, pub := newKey(t)
	if _, werr := r.Trust(admin, &wire.ReleaseKeyArgs{PublicKey: pub.String()}); werr != nil {
		t.Fatal(werr)
	}
	data := []byte("sessiond 1.0.0")
	storeBlob(t, st, data, t0)
	d := signed(t, key, "1.0.0", data)
	if _, werr := r.Publish(admin, &wire.PublishArgs{Manifest: d.ManifestBytes, Signature: d.Signature}); werr != nil {
		t.Fatal(werr)
	}
	o, werr := r.Order("1.0.0", "3f9a0c1b2d4e", false, 15*time.Minute)
	if werr != nil {
		t.Fatal(werr)
	}
	if o.Version != "1.0.0" || string(o.Manifest) != string(d.ManifestBytes) || o.Signature != d.Signature ||
		o.Rollout != "3f9a0c1b2d4e" || o.HealthWindowSec != 900 {
		t.Errorf("order %+v", o)
	}
	if _, err := release.Verify(pub, o.Manifest, o.Signature); err != nil {
		t.Errorf("the order's manifest does not verify: %v", err)
	}
	if _, werr := r.Order("2.0.0", "", false, time.Minute); werr == nil || werr.Code != wire.CodeNotFound {
		t.Errorf("order of an unknown release: %v", werr)
	}
	if _, werr := r.Withdraw(admin, &wire.VersionArgs{Version: "1.0.0"}); werr != nil {
		t.Fatal(werr)
	}
	if _, werr := r.Order("1.0.0", "", false, time.Minute); werr == nil || werr.Code != wire.CodeGone {
		t.Errorf("order of a withdrawn release: %v", werr)
	}
	want := []store.Key{{Kind: store.KindReleaseKey, ID: store.FleetKeyName}, {Kind: store.KindRelease, ID: "1.0.0"},
		{Kind: store.KindRelease, ID: "1.0.0"}}
	if !slices.Equal(n.keys, want) {
		t.Errorf("replicated %v, want %v", n.keys, want)
	}
	var events []string
	for _, e := range n.entries {
		events = append(events, e.Event+" by "+e.Technician)
	}
	if wantEv := []string{AuditKeySet + " by admin", AuditPublished + " by admin", AuditWithdrawn + " by admin"}; !slices.Equal(events, wantEv) {
		t.Errorf("audited %v, want %v", events, wantEv)
	}
}

// TestTurns: downloads beyond the broker's bound wait their turn and are
// refused when none comes within QueueWait; a broker's own bound holds
// below the broker's; a slot given back is taken by the next.
func TestTurns(t *testing.T) {
	st := fleettest.Open(t)
	n := &notes{}
	r := New(Config{MaxDownloads: 2, MaxPerBroker: 1, QueueWait: 50 * time.Millisecond},
		Deps{Blobs: st, Records: st, Cluster: alone{}, Keys: alone{}, Audit: n, Replication: n})
	t.Cleanup(r.Close)
	b := r.brokerSlots("broker-1")
	first, err := r.turn(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.turn(b, nil); err == nil || !strings.Contains(err.Error(), "retry later") {
		t.Errorf("a broker's second download at once = %v, want it refused after the wait", err)
	}
	agent, err := r.turn(nil, nil)
	if err != nil {
		t.Fatalf("an agent's download beside the broker's: %v", err)
	}
	if _, err := r.turn(nil, nil); err == nil {
		t.Error("a third download beyond the bound of 2 was not refused")
	}
	first.done()
	if pl, err := r.turn(nil, nil); err != nil {
		t.Errorf("a download once a slot is back: %v", err)
	} else {
		pl.done()
	}
	agent.done()
}
