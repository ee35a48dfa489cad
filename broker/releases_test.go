package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/releases"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/release"
	"github.com/readymesh/readymesh/peer/wire"
)

// Releases through whole brokers: real keys signing real release
// directories (package peer/release), real uploads and downloads over
// wire.ProtoRelease, and a second broker that pulls a binary from the
// first when an agent asks it.

// releaseKit is a release key pair that signs release directories.
type releaseKit struct {
	key release.SecretKey
	pub release.PublicKey
	dir string
}

func newReleaseKit(t *testing.T) releaseKit {
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
	return releaseKit{key: key, pub: pub, dir: dir}
}

// pubText is the key's .pub file, as meshctl releases trust sends it.
func (k releaseKit) pubText(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(k.dir, release.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// sign writes bins (platform → bytes) into a new directory and signs it
// as version, naming next as the next key if it is not zero.
func (k releaseKit) sign(t *testing.T, version string, bins map[string][]byte, next release.PublicKey) release.Dir {
	t.Helper()
	dir := t.TempDir()
	for p, data := range bins {
		if err := os.WriteFile(filepath.Join(dir, release.BinaryName(p)), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := release.Sign(dir, k.key, release.SignOptions{Version: version, NextKey: next}); err != nil {
		t.Fatalf("sign %s: %v", version, err)
	}
	d, err := release.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// blobStream opens a ProtoRelease stream from c and sends req, then body
// (for a put), and returns the reply and the bytes after it.
func (c *testClient) blob(req wire.BlobRequest, body []byte) (wire.BlobReply, []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	s, err := c.h.NewStream(ctx, c.broker, wire.ProtoRelease)
	if err != nil {
		c.t.Fatalf("open release stream: %v", err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(callTimeout))
	req.Versions = wire.OurVersions()
	go func() {
		// Written aside, as a refusal may come before the bytes are read.
		if wire.Write(s, &req) == nil {
			s.Write(body)
			s.CloseWrite()
		}
	}()
	rd := wire.NewReader(s)
	var rep wire.BlobReply
	if err := rd.Read(wire.MaxControl, &rep); err != nil {
		c.t.Fatalf("%s reply: %v", req.Op, err)
	}
	rest, _ := io.ReadAll(io.MultiReader(bytes.NewReader(rd.Buffered()), s))
	return rep, rest
}

// put uploads data whole as the blob it hashes to.
func (c *testClient) put(b wire.ReleaseBinary, data []byte) {
	c.t.Helper()
	rep, _ := c.blob(wire.BlobRequest{Op: wire.BlobPut, SHA256: b.SHA256, Size: b.Size}, data)
	if rep.Error != nil || rep.Have != b.Size {
		c.t.Fatalf("put %s: %+v", b.Platform, rep)
	}
}

// publish uploads a release directory's binaries and publishes it.
func (c *testClient) publish(d release.Dir) (wire.Release, *wire.Error) {
	c.t.Helper()
	for _, b := range d.Manifest.Binaries {
		data, err := os.ReadFile(d.Binaries[b.Platform])
		if err != nil {
			c.t.Fatal(err)
		}
		c.put(b, data)
	}
	raw, werr := c.tech(wire.OpReleasesPublish, wire.PublishArgs{Manifest: d.ManifestBytes, Signature: d.Signature})
	var r wire.Release
	if werr == nil {
		if err := json.Unmarshal(raw, &r); err != nil {
			c.t.Fatal(err)
		}
	}
	return r, werr
}

// auditHas reports whether the broker's audit log has an entry of event
// by technician whose detail contains detail.
func (tb *testBroker) auditHas(t *testing.T, event, technician, detail string) bool {
	t.Helper()
	es, err := tb.Store().AuditLog(1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Event == event && e.Technician == technician && strings.Contains(e.Detail, detail) {
			return true
		}
	}
	return false
}

// TestReleasePublishAndDownload: an admin trusts a key, uploads a
// release's binaries (one resumed after a cut-off) and publishes it; an
// agent downloads its platform's binary, whole and from an offset; the
// operations list and show it, tokens carry the key, and the audit log
// says who did what.
func TestReleasePublishAndDownload(t *testing.T) {
	tb := startBroker(t)
	admin, _ := tb.fleet(t)
	kit := newReleaseKit(t)
	linux, windows := randomBytes(2*store.BlobChunk+12345), randomBytes(1000)
	d := kit.sign(t, "0.3.0", map[string][]byte{"linux/amd64": linux, "windows/amd64": windows}, release.PublicKey{})

	var k wire.ReleaseKey
	admin.mustTech(wire.OpReleaseKeyTrust, wire.ReleaseKeyArgs{PublicKey: kit.pubText(t)}, &k)
	if k.KeyID != kit.pub.ID() || k.Via != "trust" || k.SetBy != store.AdminName {
		t.Fatalf("trusted %+v", k)
	}
	tok := tb.token(admin, "acme", 5, time.Hour)
	if tok.ReleaseKey != kit.pub.String() {
		t.Errorf("token carries release key %q, want %q", tok.ReleaseKey, kit.pub.String())
	}

	// The linux binary's upload stops after its first chunk, then resumes
	// at what the broker holds.
	lb, _ := d.Manifest.Binary("linux/amd64")
	rep, _ := admin.blob(wire.BlobRequest{Op: wire.BlobPut, SHA256: lb.SHA256, Size: lb.Size}, linux[:store.BlobChunk+10])
	wantCode(t, rep.Error, wire.CodeBadRequest)
	rep, _ = admin.blob(wire.BlobRequest{Op: wire.BlobHas, SHA256: lb.SHA256, Size: lb.Size}, nil)
	if rep.Error != nil || rep.Have != store.BlobChunk {
		t.Fatalf("has after a cut-off upload: %+v, want %d bytes", rep, store.BlobChunk)
	}
	rep, _ = admin.blob(wire.BlobRequest{Op: wire.BlobPut, SHA256: lb.SHA256, Size: lb.Size, Offset: rep.Have}, linux[rep.Have:])
	if rep.Error != nil || rep.Have != lb.Size {
		t.Fatalf("resumed upload: %+v", rep)
	}
	r, werr := admin.publish(d)
	if werr != nil {
		t.Fatalf("publish: %v", werr)
	}
	if r.Version != "0.3.0" || r.KeyID != kit.pub.ID() || len(r.Binaries) != 2 || r.PublishedBy != store.AdminName {
		t.Errorf("published %+v", r)
	}
	if !tb.auditHas(t, releases.AuditPublished, store.AdminName, "release 0.3.0") ||
		!tb.auditHas(t, releases.AuditKeySet, store.AdminName, kit.pub.ID()) {
		t.Error("the audit log lacks the publication or the trust")
	}

	var list []wire.Release
	admin.mustTech(wire.OpReleasesList, nil, &list)
	if len(list) != 1 || list[0].Version != "0.3.0" || list[0].Manifest != nil {
		t.Errorf("releases.list: %+v", list)
	}
	var shown wire.Release
	admin.mustTech(wire.OpReleasesShow, wire.VersionArgs{Version: "0.3.0"}, &shown)
	if !bytes.Equal(shown.Manifest, d.ManifestBytes) || shown.Signature != d.Signature {
		t.Error("releases.show does not carry the manifest and signature as signed")
	}
	for _, b := range shown.Binaries {
		if b.Have != b.Size {
			t.Errorf("releases.show: %s held %d of %d", b.Platform, b.Have, b.Size)
		}
	}

	ag := tb.agent(t, tok, "pc-1")
	for _, off := range []int64{0, store.BlobChunk + 7} {
		rep, got := ag.blob(wire.BlobRequest{Op: wire.BlobGet, SHA256: lb.SHA256, Size: lb.Size, Offset: off}, nil)
		if rep.Error != nil || !bytes.Equal(got, linux[off:]) {
			t.Errorf("get from %d: %+v, %d bytes; want the %d bytes from there", off, rep.Error, len(got), len(linux)-int(off))
		}
	}
	s := tb.scrape(t)
	if v, _ := s.has("readymesh_release_blob_bytes_total{flow=to_agent}"); v != float64(2*len(linux)-(store.BlobChunk+7)) {
		t.Errorf("bytes served to agents: %v", v)
	}
	s.checkLabels(t, []string{lb.SHA256[:16], "pc-1"}, false)
}

// TestReleaseRefusals: strangers, technicians who are not admins, agents
// asking for what no live release names, malformed and oversized
// requests, bytes that do not hash to their name and publications the
// fleet's key does not vouch for are each refused with a clear error,
// and change nothing stored.
func TestReleaseRefusals(t *testing.T) {
	tb := startBroker(t)
	admin, tok := tb.fleet(t)
	kit, other := newReleaseKit(t), newReleaseKit(t)
	data := randomBytes(3000)
	d := kit.sign(t, "0.3.0", map[string][]byte{"linux/amd64": data}, release.PublicKey{})
	b, _ := d.Manifest.Binary("linux/amd64")
	has := wire.BlobRequest{Op: wire.BlobHas, SHA256: b.SHA256, Size: b.Size}
	get := wire.BlobRequest{Op: wire.BlobGet, SHA256: b.SHA256, Size: b.Size}
	put := wire.BlobRequest{Op: wire.BlobPut, SHA256: b.SHA256, Size: b.Size}

	// Before any key is trusted, nothing publishes.
	_, werr := admin.tech(wire.OpReleasesPublish, wire.PublishArgs{Manifest: d.ManifestBytes, Signature: d.Signature})
	wantCode(t, werr, wire.CodeConflict)
	if werr != nil && !strings.Contains(werr.Message, "run meshctl releases trust release.pub first") {
		t.Errorf("publish before trust: %q", werr.Message)
	}
	admin.mustTech(wire.OpReleaseKeyTrust, wire.ReleaseKeyArgs{PublicKey: kit.pub.String()}, nil)
	_, werr = admin.tech(wire.OpReleaseKeyTrust, wire.ReleaseKeyArgs{PublicKey: other.pub.String()})
	wantCode(t, werr, wire.CodeConflict)
	if werr != nil && !strings.Contains(werr.Message, "already trusts key ID "+kit.pub.ID()+"; rotate by publishing a release with --next-key") {
		t.Errorf("a second trust: %q", werr.Message)
	}

	// A blob not uploaded yet, and one of another key's release.
	_, werr = admin.tech(wire.OpReleasesPublish, wire.PublishArgs{Manifest: d.ManifestBytes, Signature: d.Signature})
	wantCode(t, werr, wire.CodeConflict)
	od := other.sign(t, "0.3.1", map[string][]byte{"linux/amd64": data}, release.PublicKey{})
	_, werr = admin.tech(wire.OpReleasesPublish, wire.PublishArgs{Manifest: od.ManifestBytes, Signature: od.Signature})
	wantCode(t, werr, wire.CodeForbidden)
	if werr != nil && !strings.Contains(werr.Message, "signed by key ID "+other.pub.ID()) {
		t.Errorf("another key's release: %q", werr.Message)
	}
	tampered := bytes.Replace(d.ManifestBytes, []byte("0.3.0"), []byte("0.3.9"), 1)
	_, werr = admin.tech(wire.OpReleasesPublish, wire.PublishArgs{Manifest: tampered, Signature: d.Signature})
	wantCode(t, werr, wire.CodeForbidden)

	// Uploads: the wrong bytes, an offset the broker does not hold, a
	// size over the limit, a request over its limit.
	wrong := randomBytes(len(data))
	rep, _ := admin.blob(put, wrong)
	wantCode(t, rep.Error, wire.CodeBadRequest)
	if m, ok := tb.Store().BlobHave(b.SHA256); ok {
		t.Errorf("bytes of the wrong hash are kept: %+v", m)
	}
	rep, _ = admin.blob(wire.BlobRequest{Op: wire.BlobPut, SHA256: b.SHA256, Size: b.Size, Offset: 100}, data[100:])
	wantCode(t, rep.Error, wire.CodeConflict)
	rep, _ = admin.blob(wire.BlobRequest{Op: wire.BlobPut, SHA256: b.SHA256, Size: wire.MaxBlob + 1}, nil)
	wantCode(t, rep.Error, wire.CodeBadRequest)
	var big wire.BlobReply
	admin.raw(wire.ProtoRelease, frame(t, map[string]string{"op": "put", "pad": strings.Repeat("x", 8<<10)}), true, &big)
	wantCode(t, big.Error, wire.CodeTooLarge)

	// Technicians who are not admins, agents and strangers upload nothing.
	var added wire.TechnicianResult
	admin.mustTech(wire.OpTechniciansAdd, wire.TechnicianArgs{Name: "tina", Clients: []string{"acme"},
		Modes: []string{wire.ModeReadOnly}}, &added)
	tina := tb.newClient(t)
	if r := tina.login(added.LoginToken); r.Error != nil {
		t.Fatal(r.Error)
	}
	ag := tb.agent(t, tok, "pc-1")
	stranger := tb.newClient(t)
	for _, tc := range []struct {
		who  string
		c    *testClient
		req  wire.BlobRequest
		code string
	}{
		{"tina puts", tina, put, wire.CodeForbidden},
		{"tina asks", tina, has, wire.CodeForbidden},
		{"tina gets", tina, get, wire.CodeForbidden},
		{"an agent puts", ag, put, wire.CodeForbidden},
		{"an agent gets an unpublished blob", ag, get, wire.CodeNotFound},
		{"an agent asks of an unpublished blob", ag, has, wire.CodeNotFound},
		{"a stranger asks", stranger, has, wire.CodeUnauthorized},
		{"a stranger gets", stranger, get, wire.CodeUnauthorized},
		{"a stranger puts", stranger, put, wire.CodeUnauthorized},
	} {
		rep, rest := tc.c.blob(tc.req, data)
		wantCode(t, rep.Error, tc.code)
		if len(rest) != 0 {
			t.Errorf("%s: %d bytes after the refusal", tc.who, len(rest))
		}
	}
	_, werr = tina.tech(wire.OpReleasesPublish, wire.PublishArgs{Manifest: d.ManifestBytes, Signature: d.Signature})
	wantCode(t, werr, wire.CodeForbidden)
	if _, ok := tb.Store().BlobHave(b.SHA256); ok {
		t.Error("a refused upload stored bytes")
	}
	var list []wire.Release
	admin.mustTech(wire.OpReleasesList, nil, &list)
	if len(list) != 0 {
		t.Errorf("refused publications stored %+v", list)
	}

	// Published, then withdrawn: the agent gets it, then is told it is
	// gone; the version cannot be published again.
	if _, werr := admin.publish(d); werr != nil {
		t.Fatal(werr)
	}
	if rep, got := ag.blob(get, nil); rep.Error != nil || !bytes.Equal(got, data) {
		t.Fatalf("get of a published blob: %+v", rep)
	}
	_, werr = admin.tech(wire.OpReleasesPublish, wire.PublishArgs{Manifest: d.ManifestBytes, Signature: d.Signature})
	wantCode(t, werr, wire.CodeConflict)
	_, werr = tina.tech(wire.OpReleasesWithdraw, wire.VersionArgs{Version: "0.3.0"})
	wantCode(t, werr, wire.CodeForbidden)
	var w wire.Release
	admin.mustTech(wire.OpReleasesWithdraw, wire.VersionArgs{Version: "0.3.0"}, &w)
	if !w.Withdrawn || w.WithdrawnBy != store.AdminName || !tb.auditHas(t, releases.AuditWithdrawn, store.AdminName, "0.3.0") {
		t.Errorf("withdrawn %+v, or not audited", w)
	}
	for _, req := range []wire.BlobRequest{get, has} {
		rep, rest := ag.blob(req, nil)
		wantCode(t, rep.Error, wire.CodeGone)
		if len(rest) != 0 {
			t.Errorf("%s of a withdrawn release: %d bytes sent", req.Op, len(rest))
		}
	}
	_, werr = admin.tech(wire.OpReleasesWithdraw, wire.VersionArgs{Version: "0.3.0"})
	wantCode(t, werr, wire.CodeConflict)

	// A removed machine is told so.
	admin.mustTech(wire.OpMachinesRemove, wire.ShowArgs{Machine: ag.ID()}, nil)
	rep, _ = ag.blob(has, nil)
	wantCode(t, rep.Error, wire.CodeRemoved)
}

// TestReleaseKeyRotation: a release whose manifest names a next key,
// signed by the fleet's key, moves the fleet to the next key as it is
// published; the old key's releases are refused from then on.
func TestReleaseKeyRotation(t *testing.T) {
	tb := startBroker(t)
	admin, _ := tb.fleet(t)
	oldKit, newKit := newReleaseKit(t), newReleaseKit(t)
	admin.mustTech(wire.OpReleaseKeyTrust, wire.ReleaseKeyArgs{PublicKey: oldKit.pub.String()}, nil)
	bins := map[string][]byte{"linux/arm64": randomBytes(500)}
	if _, werr := admin.publish(oldKit.sign(t, "0.3.0", bins, newKit.pub)); werr != nil {
		t.Fatal(werr)
	}
	var k wire.ReleaseKey
	admin.mustTech(wire.OpReleaseKey, nil, &k)
	if k.KeyID != newKit.pub.ID() || k.Via != "release 0.3.0" {
		t.Fatalf("fleet key after the rotation: %+v", k)
	}
	if !tb.auditHas(t, releases.AuditKeySet, store.AdminName, newKit.pub.ID()+" replaces "+oldKit.pub.ID()) {
		t.Error("the rotation is not audited")
	}
	if tok := tb.token(admin, "acme", 1, time.Hour); tok.ReleaseKey != newKit.pub.String() {
		t.Errorf("a token after the rotation carries %q", tok.ReleaseKey)
	}
	_, werr := admin.publish(oldKit.sign(t, "0.4.0", bins, release.PublicKey{}))
	wantCode(t, werr, wire.CodeForbidden)
	if _, werr := admin.publish(newKit.sign(t, "0.4.0", bins, release.PublicKey{})); werr != nil {
		t.Errorf("a release of the new key: %v", werr)
	}
}

// clusterPair starts two brokers gossiping on loopback.
func clusterPair(t *testing.T) (b1, b2 *testBroker) {
	t.Helper()
	key := [][]byte{[]byte("readymesh-release-test-gossip!!!")}
	b1 = startBroker(t, func(c *Config) {
		c.Name, c.Gossip, c.GossipProfile, c.GossipKeys = "b1", "127.0.0.1:0", "local", key
	})
	b2 = startBroker(t, func(c *Config) {
		c.Name, c.Gossip, c.GossipProfile, c.GossipKeys = "b2", "127.0.0.1:0", "local", key
		c.Join = []string{b1.cluster.LocalAddr()}
	})
	return b1, b2
}

// via returns c's key connected to broker tb instead.
func (c *testClient) via(t *testing.T, tb *testBroker) *testClient {
	t.Helper()
	ai, err := bridge.AddrInfo(tb.info)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := c.h.Connect(ctx, ai); err != nil {
		t.Fatal(err)
	}
	return &testClient{t: t, tb: tb, h: c.h, key: c.key, broker: ai.ID}
}

// TestReleasePulledOnDemand: a release published on one broker reaches
// the other as a record; its binary does not, until agents ask the
// second broker for it: then the second pulls it from the first once,
// however many agents ask at the same time, and serves each of them.
func TestReleasePulledOnDemand(t *testing.T) {
	b1, b2 := clusterPair(t)
	admin, tok := b1.fleet(t)
	kit := newReleaseKit(t)
	data := randomBytes(3*store.BlobChunk + 999)
	d := kit.sign(t, "0.3.0", map[string][]byte{"linux/amd64": data}, release.PublicKey{})
	b, _ := d.Manifest.Binary("linux/amd64")
	admin.mustTech(wire.OpReleaseKeyTrust, wire.ReleaseKeyArgs{PublicKey: kit.pub.String()}, nil)
	if _, werr := admin.publish(d); werr != nil {
		t.Fatal(werr)
	}
	agents := []*testClient{b1.agent(t, tok, "pc-1"), b1.agent(t, tok, "pc-2"), b1.agent(t, tok, "pc-3")}
	waitFor(t, 20*time.Second, "b2 to hold the release and the machines", func() bool {
		_, ok, _ := b2.Store().Release("0.3.0")
		for _, a := range agents {
			if _, known := b2.Store().Machine(a.ID()); !known {
				return false
			}
		}
		return ok
	})
	if _, ok := b2.Store().BlobHave(b.SHA256); ok {
		t.Fatal("the blob was replicated with the record")
	}

	get := wire.BlobRequest{Op: wire.BlobGet, SHA256: b.SHA256, Size: b.Size}
	var wg sync.WaitGroup
	errs := make(chan error, len(agents))
	for i, a := range agents {
		a2 := a.via(t, b2)
		wg.Go(func() {
			req := get
			req.Offset = int64(i) * 1000
			rep, got := a2.blob(req, nil)
			switch {
			case rep.Error != nil:
				errs <- fmt.Errorf("agent %d: %v", i, rep.Error)
			case !bytes.Equal(got, data[req.Offset:]):
				errs <- fmt.Errorf("agent %d: %d bytes, want %d", i, len(got), len(data)-int(req.Offset))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m, ok := b2.Store().BlobHave(b.SHA256); !ok || !m.Whole() {
		t.Errorf("b2 holds %+v after the pull", m)
	}
	s := b2.scrape(t)
	if v, _ := s.has("readymesh_release_blob_bytes_total{flow=from_broker}"); v != float64(len(data)) {
		t.Errorf("b2 pulled %v bytes, want the blob once (%d)", v, len(data))
	}
	if v, _ := b1.scrape(t).has("readymesh_release_blob_bytes_total{flow=to_broker}"); v != float64(len(data)) {
		t.Errorf("b1 served %v bytes to brokers, want %d", v, len(data))
	}
	var shown wire.Release
	b2.admin(t).mustTech(wire.OpReleasesShow, wire.VersionArgs{Version: "0.3.0"}, &shown)
	if len(shown.Binaries) != 1 || shown.Binaries[0].Have != b.Size {
		t.Errorf("b2's releases.show: %+v", shown.Binaries)
	}

	// Withdrawn on b1, refused on b2 once the record arrives.
	admin.mustTech(wire.OpReleasesWithdraw, wire.VersionArgs{Version: "0.3.0"}, nil)
	a2 := agents[0].via(t, b2)
	waitFor(t, 20*time.Second, "b2 to refuse the withdrawn release", func() bool {
		rep, _ := a2.blob(wire.BlobRequest{Op: wire.BlobHas, SHA256: b.SHA256, Size: b.Size}, nil)
		return rep.Error != nil && rep.Error.Code == wire.CodeGone
	})
}

// TestReleaseOneUploadAtATime: an admin runs one upload at a time: a
// second upload by the same admin supersedes the first (cut off on the
// admin's side, most likely), which is reset, and resumes where it
// stopped.
func TestReleaseOneUploadAtATime(t *testing.T) {
	tb := startBroker(t)
	admin, _ := tb.fleet(t)
	data := randomBytes(2 * store.BlobChunk)
	sum := sha256.Sum256(data)
	b := wire.ReleaseBinary{Platform: "linux/amd64", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	s, err := admin.h.NewStream(ctx, admin.broker, wire.ProtoRelease)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(callTimeout))
	if err := wire.Write(s, &wire.BlobRequest{Versions: wire.OurVersions(), Op: wire.BlobPut, SHA256: b.SHA256, Size: b.Size}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(data[:store.BlobChunk+1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the first chunk to be stored", func() bool {
		m, ok := tb.Store().BlobHave(b.SHA256)
		return ok && m.Have == store.BlobChunk
	})
	rep, _ := admin.blob(wire.BlobRequest{Op: wire.BlobPut, SHA256: b.SHA256, Size: b.Size, Offset: store.BlobChunk}, data[store.BlobChunk:])
	if rep.Error != nil || rep.Have != b.Size {
		t.Errorf("a second upload by the same admin: %+v, want it to supersede the first and finish", rep)
	}
	var first wire.BlobReply
	if err := wire.NewReader(s).Read(wire.MaxControl, &first); err == nil && first.Error == nil {
		t.Errorf("the superseded upload was answered %+v, want it reset or refused", first)
	}
}
