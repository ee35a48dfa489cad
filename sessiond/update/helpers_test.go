package update

import (
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// testLogger returns a logger that writes through t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// releaseKey is a minisign key pair made for a test.
type releaseKey struct {
	pub  minisign.PublicKey
	priv minisign.PrivateKey
}

func newReleaseKey(t *testing.T) releaseKey {
	t.Helper()
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return releaseKey{pub: pub, priv: priv}
}

// text is the public key's base64 line, as an agent pins it.
func (k releaseKey) text() string { return k.pub.String() }

// here is this platform, as a manifest names it.
var here = runtime.GOOS + "/" + runtime.GOARCH

// manifest returns a manifest of version with one binary for this
// platform.
func manifest(version string, bin wire.ReleaseBinary) release.Manifest {
	bin.Platform = here
	return release.Manifest{Format: release.Format, Version: version, Created: time.Now().UTC().Truncate(time.Second),
		Binaries: []wire.ReleaseBinary{bin}}
}

// sign returns m's bytes and their minisign signature by k.
func (k releaseKey) sign(t *testing.T, m release.Manifest) ([]byte, string) {
	t.Helper()
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	sig := minisign.SignWithComments(k.priv, body, "readymesh release "+m.Version, "signature from a test release key")
	return body, string(sig)
}

// order is an update order for m signed by k.
func (k releaseKey) order(t *testing.T, m release.Manifest) *wire.UpdateOrder {
	body, sig := k.sign(t, m)
	return &wire.UpdateOrder{Version: m.Version, Manifest: body, Signature: sig, HealthWindowSec: 60}
}
