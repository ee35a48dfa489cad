package backup

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/identity"
)

const machines = 12

// fixture is a store with a fleet, and a broker key.
type fixture struct {
	st     *store.Store
	key    []byte
	peerID string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(store.Config{Path: filepath.Join(dir, "broker.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := fleettest.Seed(st, "acme", machines); err != nil {
		t.Fatal(err)
	}
	k, _, err := identity.LoadOrCreate(filepath.Join(dir, "broker.key"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "broker.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, key: raw, peerID: k.ID.String()}
}

func (f *fixture) source(withKey bool) Source {
	src := Source{Snapshot: f.st.Backup, Broker: Broker{Name: "eu-1", PeerID: f.peerID}}
	if withKey {
		src.Key = f.key
	}
	return src
}

// write makes a backup in a fresh directory and returns its path.
func (f *fixture) write(t *testing.T, withKey bool) (string, Summary) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "eu-1.backup")
	sum, err := Write(path, f.source(withKey))
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return path, sum
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	path, sum := f.write(t, true)

	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	raw, _ := os.ReadFile(path)
	if got := sha256.Sum256(raw); hex.EncodeToString(got[:]) != sum.SHA256 || int64(len(raw)) != sum.Bytes {
		t.Errorf("summary says %d bytes sha256 %s; the file is %d bytes sha256 %x", sum.Bytes, sum.SHA256, len(raw), got)
	}
	m := sum.Manifest
	if m.Broker.PeerID != f.peerID || m.Broker.Name != "eu-1" || m.Store.Machines != machines ||
		m.Build.Version != buildinfo.Version || !m.HasKey() || m.CreatedAt.IsZero() {
		t.Errorf("manifest %+v", m)
	}
	if left := tempFiles(t, filepath.Dir(path)); len(left) > 0 {
		t.Errorf("Write left %v", left)
	}

	dataDir := filepath.Join(t.TempDir(), "new", "broker")
	got, err := Restore(path, dataDir)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got.Broker != m.Broker || got.Store != m.Store {
		t.Errorf("Restore returned manifest %+v, Write made %+v", got, m)
	}
	for name, mode := range map[string]os.FileMode{dataDir: os.ModeDir | 0o700,
		filepath.Join(dataDir, StorePart): 0o600, filepath.Join(dataDir, KeyPart): 0o600} {
		if fi, err := os.Stat(name); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", name, fi.Mode(), err, mode)
		}
	}
	if k, _ := os.ReadFile(filepath.Join(dataDir, KeyPart)); !bytes.Equal(k, f.key) {
		t.Error("the restored key differs from the broker's")
	}
	if left := tempFiles(t, dataDir); len(left) > 0 {
		t.Errorf("Restore left %v", left)
	}
	st, err := store.Open(store.Config{Path: filepath.Join(dataDir, StorePart)})
	if err != nil {
		t.Fatalf("open the restored store: %v", err)
	}
	defer st.Close()
	if n := len(st.Machines()); n != machines {
		t.Errorf("restored store has %d machines, want %d", n, machines)
	}
}

// TestNoKey: a backup without the key restores the store alone, also
// beside a key already in the directory.
func TestNoKey(t *testing.T) {
	f := newFixture(t)
	path, sum := f.write(t, false)
	if sum.Manifest.HasKey() {
		t.Fatal("manifest lists a key")
	}
	dataDir := t.TempDir()
	os.WriteFile(filepath.Join(dataDir, KeyPart), []byte("another key"), 0o600)
	if _, err := Restore(path, dataDir); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if k, _ := os.ReadFile(filepath.Join(dataDir, KeyPart)); string(k) != "another key" {
		t.Error("a backup without a key replaced the directory's key")
	}
	if _, err := store.CheckBackup(filepath.Join(dataDir, StorePart)); err != nil {
		t.Error(err)
	}
}

// TestRestoreOccupied: a directory with a store, or with a key when the
// backup has one, is refused with how to move it away, and left as is.
func TestRestoreOccupied(t *testing.T) {
	f := newFixture(t)
	path, _ := f.write(t, true)
	for _, name := range []string{StorePart, KeyPart} {
		t.Run(name, func(t *testing.T) {
			dataDir := t.TempDir()
			os.WriteFile(filepath.Join(dataDir, name), []byte("mine"), 0o600)
			before := listing(t, dataDir)
			_, err := Restore(path, dataDir)
			if !errors.Is(err, ErrOccupied) || !strings.Contains(err.Error(), "mv "+dataDir) {
				t.Fatalf("Restore into a directory with %s: %v", name, err)
			}
			if after := listing(t, dataDir); !slices.Equal(before, after) {
				t.Errorf("directory changed: %v → %v", before, after)
			}
		})
	}
}

// TestRestoreRefusesDamage: every kind of damage is refused as corrupt,
// and the data directory is left as it was (not created, or empty).
func TestRestoreRefusesDamage(t *testing.T) {
	f := newFixture(t)
	good, _ := f.write(t, true)
	raw, _ := os.ReadFile(good)
	entries := readEntries(t, raw)

	type damage struct {
		name    string
		file    []byte
		want    string
		wantErr error // nil means ErrCorrupt
	}
	var cases []damage
	// Truncation anywhere in the data. (The end marker, the last 1024
	// bytes, and the padding of the last entry before it carry none.)
	for _, at := range []int{0, 1, 100, 511, 512, 1000, 1536, len(raw) / 3, len(raw) / 2, len(raw) - 2048, len(raw) - 1536, len(raw) - 1536 + 10} {
		cases = append(cases, damage{fmt.Sprintf("truncated at %d of %d", at, len(raw)), raw[:at], "", nil})
	}
	for _, e := range entries {
		off := bytes.Index(raw, e.data)
		cases = append(cases, damage{"byte flipped in " + e.name, flip(raw, off+len(e.data)/2), "", nil})
	}
	storeHeader := bytes.Index(raw, entries[1].data) - 512
	cases = append(cases, damage{"byte flipped in a tar header", flip(raw, storeHeader+2), "invalid tar header", nil})
	cases = append(cases,
		damage{"wrong checksum", rebuild(t, entries, func(m *Manifest, _ map[string][]byte) {
			m.Parts[0].SHA256 = strings.Repeat("ab", 32)
		}), "SHA-256", nil},
		damage{"wrong size", rebuild(t, entries, func(m *Manifest, _ map[string][]byte) { m.Parts[0].Size-- }), "the manifest says", nil},
		damage{"part missing", rebuild(t, entries, func(_ *Manifest, p map[string][]byte) { delete(p, KeyPart) }), "missing", nil},
		damage{"unknown part listed", rebuild(t, entries, func(m *Manifest, _ map[string][]byte) {
			m.Parts = append(m.Parts, Part{Name: "../etc/passwd", SHA256: m.Parts[0].SHA256})
		}), "unknown part", nil},
		damage{"newer format", rebuild(t, entries, func(m *Manifest, _ map[string][]byte) { m.Version = 99 }), "version 99", ErrNewerFormat},
		damage{"not a backup", rebuild(t, entries, func(m *Manifest, _ map[string][]byte) { m.Format = "zip" }), "format", nil},
		damage{"garbage snapshot with matching checksums", rebuild(t, entries, func(m *Manifest, p map[string][]byte) {
			p[StorePart] = bytes.Repeat([]byte("garbage!"), 4096)
		}), "not a usable store snapshot", nil},
		damage{"machine count differs", rebuild(t, entries, func(m *Manifest, _ map[string][]byte) { m.Store.Machines++ }), "machines", nil},
		damage{"someone else's key", rebuild(t, entries, func(m *Manifest, p map[string][]byte) {
			p[KeyPart] = newKey(t)
		}), "the manifest names broker", nil},
		damage{"entry not in the manifest", appendEntry(t, entries, "extra.txt", []byte("hi")), "not in the manifest", nil},
		damage{"manifest not first", reorder(t, entries), "not manifest.json", nil},
		damage{"empty file", nil, "no manifest", nil},
		damage{"not a tar", bytes.Repeat([]byte("x"), 4096), "", nil},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "damaged.backup")
			if err := os.WriteFile(path, tc.file, 0o600); err != nil {
				t.Fatal(err)
			}
			// Into a directory that does not exist yet: it must not be
			// left behind.
			parent := t.TempDir()
			dataDir := filepath.Join(parent, "a", "broker")
			if tc.wantErr == nil {
				tc.wantErr = ErrCorrupt
			}
			_, err := Restore(path, dataDir)
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore: %v; want %v saying %q", err, tc.wantErr, tc.want)
			}
			t.Log(err)
			if left := listing(t, parent); len(left) > 0 {
				t.Errorf("a refused restore left %v", left)
			}
			// Into an existing empty directory: it stays empty.
			empty := t.TempDir()
			if _, err := Restore(path, empty); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Restore into an empty directory: %v", err)
			}
			if left := listing(t, empty); len(left) > 0 {
				t.Errorf("a refused restore left %v", left)
			}
		})
	}
}

// TestWriteFailsCleanly: a snapshot that fails or is not a store leaves
// no backup, no temporary file, and an older backup at the path intact.
func TestWriteFailsCleanly(t *testing.T) {
	for name, snap := range map[string]func(io.Writer) (int64, error){
		"error midway": func(w io.Writer) (int64, error) {
			n, _ := w.Write(make([]byte, 8192))
			return int64(n), errors.New("connection lost")
		},
		"garbage": func(w io.Writer) (int64, error) {
			n, err := w.Write(bytes.Repeat([]byte("garbage!"), 4096))
			return int64(n), err
		},
		"short": func(w io.Writer) (int64, error) {
			n, err := w.Write(make([]byte, 100))
			return int64(n) + 1, err
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "b.backup")
			os.WriteFile(path, []byte("older backup"), 0o600)
			if _, err := Write(path, Source{Snapshot: snap, Broker: Broker{PeerID: "x"}}); err == nil {
				t.Fatal("Write succeeded")
			} else {
				t.Log(err)
			}
			if left := listing(t, dir); !slices.Equal(left, []string{"b.backup"}) {
				t.Errorf("directory holds %v", left)
			}
			if raw, _ := os.ReadFile(path); string(raw) != "older backup" {
				t.Error("the older backup was replaced")
			}
		})
	}
}

// TestArchiveLists: standard tar lists the parts in order, manifest first.
func TestArchiveLists(t *testing.T) {
	f := newFixture(t)
	path, _ := f.write(t, true)
	raw, _ := os.ReadFile(path)
	var names []string
	for _, e := range readEntries(t, raw) {
		names = append(names, e.name)
	}
	if want := []string{ManifestName, StorePart, KeyPart}; !slices.Equal(names, want) {
		t.Errorf("entries %v, want %v", names, want)
	}
}

type entry struct {
	name string
	data []byte
}

func readEntries(t *testing.T, raw []byte) []entry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(raw))
	var out []entry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{hdr.Name, data})
	}
}

func writeEntries(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Size: int64(len(e.data)), Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.data)
	}
	tw.Close()
	return buf.Bytes()
}

// rebuild makes an archive from a good one's entries after edit changes
// the manifest or the parts; the manifest's checksums and sizes follow
// the parts' new contents unless edit set them itself.
func rebuild(t *testing.T, entries []entry, edit func(m *Manifest, parts map[string][]byte)) []byte {
	t.Helper()
	var m Manifest
	if err := json.Unmarshal(entries[0].data, &m); err != nil {
		t.Fatal(err)
	}
	parts := map[string][]byte{}
	for _, e := range entries[1:] {
		parts[e.name] = e.data
	}
	before := map[string][]byte{}
	for k, v := range parts {
		before[k] = v
	}
	edit(&m, parts)
	for i, p := range m.Parts {
		if data, ok := parts[p.Name]; ok && !bytes.Equal(data, before[p.Name]) {
			sum := sha256.Sum256(data)
			m.Parts[i].Size, m.Parts[i].SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
		}
	}
	raw, _ := json.Marshal(m)
	out := []entry{{ManifestName, raw}}
	for _, name := range []string{StorePart, KeyPart} {
		if data, ok := parts[name]; ok {
			out = append(out, entry{name, data})
		}
	}
	return writeEntries(t, out)
}

func appendEntry(t *testing.T, entries []entry, name string, data []byte) []byte {
	return writeEntries(t, append(slices.Clone(entries), entry{name, data}))
}

func reorder(t *testing.T, entries []entry) []byte {
	e := slices.Clone(entries)
	e[0], e[1] = e[1], e[0]
	return writeEntries(t, e)
}

func flip(raw []byte, at int) []byte {
	out := slices.Clone(raw)
	out[at] ^= 0x40
	return out
}

func newKey(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k")
	if _, _, err := identity.LoadOrCreate(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	return raw
}

// listing is the names under dir, recursively.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func tempFiles(t *testing.T, dir string) []string {
	var out []string
	for _, name := range listing(t, dir) {
		if strings.HasPrefix(filepath.Base(name), ".") {
			out = append(out, name)
		}
	}
	return out
}
