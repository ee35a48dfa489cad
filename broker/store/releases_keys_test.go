package store

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"aead.dev/minisign"

	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// testSigner is a release key of the tests: real minisign keys, so that
// replicated records pass the checks of Import.
type testSigner struct {
	pub  minisign.PublicKey
	priv minisign.PrivateKey
	id   string
}

func newSigner() *testSigner {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return &testSigner{pub: pub, priv: priv, id: fmt.Sprintf("%016X", pub.ID())}
}

// The keys of the tests, by ID (keyA and keyB in releases_test.go).
var (
	signersMu sync.Mutex
	signers   = map[string]*testSigner{}
	keyA      = addSigner()
	keyB      = addSigner()
	keyC      = addSigner()
)

func addSigner() string {
	s := newSigner()
	signersMu.Lock()
	defer signersMu.Unlock()
	signers[s.id] = s
	return s.id
}

func signerOf(id string) *testSigner {
	signersMu.Lock()
	defer signersMu.Unlock()
	return signers[id]
}

// publicKey is the base64 line of key id, or a malformed one for an ID
// no signer has.
// retired is a list of retired keys from pairs of key IDs and versions
// (an empty ID is left empty).
func retired(pairs ...string) []RetiredKey {
	var out []RetiredKey
	for i := 0; i+1 < len(pairs); i += 2 {
		k := ""
		if pairs[i] != "" {
			k = publicKey(pairs[i])
		}
		out = append(out, RetiredKey{Key: k, Until: pairs[i+1]})
	}
	return out
}

func publicKey(id string) string {
	if s := signerOf(id); s != nil {
		return s.pub.String()
	}
	return "RW" + id
}

// testManifest is a valid manifest of version, naming next (a key ID, or
// "") as the next key.
func testManifest(version, next string, at time.Time) []byte {
	m := release.Manifest{Format: release.Format, Version: version, Created: at.UTC(), Binaries: []wire.ReleaseBinary{
		{Platform: "linux/amd64", SHA256: fmt.Sprintf("%064x", 1), Size: 10}}}
	if next != "" {
		m.NextKey = publicKey(next)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return raw
}

// signedRelease is a release of version signed by key id, naming next.
// An ID no signer has gives a record with a malformed signature.
func signedRelease(version, id, next string, at time.Time) ReleaseRecord {
	rec := ReleaseRecord{Version: version, Manifest: testManifest(version, next, at), Signature: "untrusted comment: test\nsig",
		KeyID: id, PublishedBy: "admin", PublishedAt: at}
	if s := signerOf(id); s != nil {
		rec.Signature = string(minisign.Sign(s.priv, rec.Manifest))
	}
	return rec
}
