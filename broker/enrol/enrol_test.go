package enrol_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/broker/enrol"
	"github.com/readymesh/readymesh/broker/internal/fleettest"
	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/wire"
)

var now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// self is this broker as tokens describe it.
type self struct{ info wire.BrokerInfo }

func (s *self) ID() string            { return s.info.PeerID }
func (s *self) Info() wire.BrokerInfo { return s.info }

// repl records what admission replicates; it knows no other broker.
type repl struct {
	mu      sync.Mutex
	written []store.Key // mu guards
}

func (r *repl) IsMember(string) bool                     { return false }
func (r *repl) CopyToPeer(context.Context, ...store.Key) {}
func (r *repl) Written(keys ...store.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.written = append(r.written, keys...)
}

func (r *repl) keys() []store.Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.written)
}

var (
	_ enrol.Self        = (*self)(nil)
	_ enrol.Replication = (*repl)(nil)
	_ enrol.Store       = (*store.Store)(nil)
)

func newSelf(t *testing.T) *self {
	id := fleettest.PeerID(t).String()
	return &self{info: wire.BrokerInfo{PeerID: id, Name: "eu-1", Addrs: []string{"/ip4/127.0.0.1/udp/4001/quic-v1/p2p/" + id}}}
}

// readCredential parses the admin credential in dir.
func readCredential(t *testing.T, dir string) wire.Token {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, enrol.CredentialFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := wire.ParseToken(wire.KindLogin, string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestEnsureAdmin(t *testing.T) {
	dir, st, me := t.TempDir(), fleettest.Open(t), newSelf(t)
	a := enrol.New(enrol.Config{DataDir: dir}, st, me, &repl{})
	path, err := a.EnsureAdmin()
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, enrol.CredentialFile) {
		t.Errorf("path %s", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credential mode %v, want 0600", fi.Mode().Perm())
	}
	tok := readCredential(t, dir)
	if tok.Broker.PeerID != me.ID() || !slices.Equal(tok.Broker.Addrs, me.info.Addrs) {
		t.Errorf("credential names broker %+v, want %+v", tok.Broker, me.info)
	}
	if st.AdminHash() != wire.HashSecret(tok.Secret) {
		t.Error("the store's admin hash is not the credential's")
	}
	ts, err := st.Technicians()
	if err != nil || len(ts) != 1 || ts[0].Name != store.AdminName || !ts[0].Admin {
		t.Errorf("technicians %+v, %v; want the admin", ts, err)
	}

	// A restart keeps the credential and writes the broker's current
	// addresses into it.
	me.info.Addrs = append(me.info.Addrs, "/ip4/127.0.0.1/tcp/4001/p2p/"+me.ID())
	if _, err := enrol.New(enrol.Config{DataDir: dir}, st, me, &repl{}).EnsureAdmin(); err != nil {
		t.Fatal(err)
	}
	again := readCredential(t, dir)
	if again.Secret != tok.Secret || len(again.Broker.Addrs) != 2 {
		t.Errorf("after a restart: same secret %v, addresses %v", again.Secret == tok.Secret, again.Broker.Addrs)
	}
	if st.AdminHash() != wire.HashSecret(tok.Secret) {
		t.Error("a restart changed the admin hash")
	}
}

// TestEnsureAdminRefuses a credential this broker cannot use: another
// broker's, or not a credential at all. The file is left as it was.
func TestEnsureAdminRefuses(t *testing.T) {
	other := newSelf(t)
	tests := map[string]string{
		"another broker's":   wire.Token{Kind: wire.KindLogin, Secret: wire.NewSecret(), Broker: other.info}.String() + "\n",
		"not a token":        "hello\n",
		"an enrolment token": wire.Token{Kind: wire.KindEnroll, Secret: wire.NewSecret(), Broker: other.info}.String(),
	}
	for desc, content := range tests {
		t.Run(desc, func(t *testing.T) {
			dir, st := t.TempDir(), fleettest.Open(t)
			path := filepath.Join(dir, enrol.CredentialFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := enrol.New(enrol.Config{DataDir: dir}, st, newSelf(t), &repl{}).EnsureAdmin()
			if err == nil || !strings.Contains(err.Error(), "not this broker's admin credential") {
				t.Errorf("EnsureAdmin = %v", err)
			}
			if raw, _ := os.ReadFile(path); string(raw) != content {
				t.Error("the refused credential was rewritten")
			}
			if st.AdminHash() != "" {
				t.Error("a refused credential set the admin hash")
			}
		})
	}
}

// TestEnsureAdminJoining: a broker that joins a cluster whose admin
// exists makes its own credential and leaves the replicated hash alone.
func TestEnsureAdminJoining(t *testing.T) {
	st := fleettest.Open(t)
	cluster := wire.HashSecret(wire.NewSecret())
	if err := st.SetAdminHash(cluster, now); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := enrol.New(enrol.Config{DataDir: dir}, st, newSelf(t), &repl{}).EnsureAdmin(); err != nil {
		t.Fatal(err)
	}
	if tok := readCredential(t, dir); wire.HashSecret(tok.Secret) == cluster {
		t.Error("the new credential is the cluster's")
	}
	if st.AdminHash() != cluster {
		t.Error("joining replaced the replicated admin hash")
	}
}

// TestAdminLogin: the credential logs in as the admin technician on this
// broker, binding the caller's key.
func TestAdminLogin(t *testing.T) {
	dir, st := t.TempDir(), fleettest.Open(t)
	a := enrol.New(enrol.Config{DataDir: dir}, st, newSelf(t), &repl{})
	if _, err := a.EnsureAdmin(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, enrol.CredentialFile))
	key := fleettest.PeerID(t)
	reply, err := a.ServeLogin(&serve.Stream{Remote: key}, &wire.Login{Token: string(raw)})
	if err != nil {
		t.Fatal(err)
	}
	if lr, ok := reply.(*wire.LoginReply); !ok || !lr.Technician.Admin || !slices.Contains(lr.Technician.Keys, key.String()) {
		t.Errorf("login reply %+v", reply)
	}
}

func TestCreateToken(t *testing.T) {
	st := fleettest.Open(t)
	if _, err := st.CreateClient("acme", now); err != nil {
		t.Fatal(err)
	}
	me := newSelf(t)
	tests := []struct {
		desc     string
		cfg      enrol.Config
		args     wire.TokenArgs
		wantUses int
		wantTTL  time.Duration
		code     string
	}{
		{"defaults", enrol.Config{}, wire.TokenArgs{Client: "acme"}, 1, 24 * time.Hour, ""},
		{"configured TTL", enrol.Config{TokenTTL: time.Hour}, wire.TokenArgs{Client: "acme"}, 1, time.Hour, ""},
		{"asked", enrol.Config{TokenTTL: time.Hour}, wire.TokenArgs{Client: "acme", Uses: 50, TTLSec: 600}, 50, 10 * time.Minute, ""},
		{"unknown client", enrol.Config{}, wire.TokenArgs{Client: "nobody"}, 0, 0, wire.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := &repl{}
			tc.cfg.DataDir, tc.cfg.Now = t.TempDir(), func() time.Time { return now }
			a := enrol.New(tc.cfg, st, me, r)
			res, werr := a.CreateToken(&wire.Technician{Name: "alice"}, &tc.args)
			if tc.code != "" {
				if werr == nil || werr.Code != tc.code || len(r.keys()) != 0 {
					t.Errorf("CreateToken = %+v, %v; want %s, nothing replicated", res, werr, tc.code)
				}
				return
			}
			if werr != nil {
				t.Fatal(werr)
			}
			if res.Uses != tc.wantUses || !res.ExpiresAt.Equal(now.Add(tc.wantTTL)) || res.Client != "acme" {
				t.Errorf("result %+v; want %d uses, expiring %v", res, tc.wantUses, now.Add(tc.wantTTL))
			}
			tok, err := wire.ParseToken(wire.KindEnroll, res.Token)
			if err != nil || tok.Broker.PeerID != me.ID() {
				t.Fatalf("token %+v, %v", tok, err)
			}
			hash := wire.HashSecret(tok.Secret)
			stored, err := st.Token(hash)
			if err != nil || stored.Uses != tc.wantUses || stored.UsesLeft != tc.wantUses || stored.CreatedBy != "alice" ||
				!stored.ExpiresAt.Equal(res.ExpiresAt) {
				t.Errorf("stored %+v, %v", stored, err)
			}
			if keys := r.keys(); len(keys) != 1 || keys[0] != (store.Key{Kind: store.KindToken, ID: hash}) {
				t.Errorf("replicated %v", keys)
			}
		})
	}
}

func TestAddTechnician(t *testing.T) {
	st := fleettest.Open(t)
	if _, err := st.CreateClient("acme", now); err != nil {
		t.Fatal(err)
	}
	r, me := &repl{}, newSelf(t)
	a := enrol.New(enrol.Config{DataDir: t.TempDir(), Now: func() time.Time { return now }}, st, me, r)
	args := &wire.TechnicianArgs{Name: "alice", Clients: []string{"acme"}, Modes: []string{wire.ModeInteractive}}
	res, werr := a.AddTechnician(args)
	if werr != nil {
		t.Fatal(werr)
	}
	if res.Technician.Name != "alice" || !res.ExpiresAt.Equal(now.Add(72*time.Hour)) || !res.Technician.CreatedAt.Equal(now) {
		t.Errorf("result %+v; want a login token valid 72 h", res)
	}
	tok, err := wire.ParseToken(wire.KindLogin, res.LoginToken)
	if err != nil || tok.Broker.PeerID != me.ID() {
		t.Fatalf("login token %+v, %v", tok, err)
	}
	if keys := r.keys(); len(keys) != 1 || keys[0] != (store.Key{Kind: store.KindTechnician, ID: "alice"}) {
		t.Errorf("replicated %v", keys)
	}
	// The login token logs in once, as alice.
	key := fleettest.PeerID(t)
	reply, err := a.ServeLogin(&serve.Stream{Remote: key}, &wire.Login{Token: res.LoginToken})
	if lr, ok := reply.(*wire.LoginReply); err != nil || !ok || lr.Technician.Name != "alice" || lr.Technician.Admin {
		t.Errorf("login: %+v, %v", reply, err)
	}
	if _, err := a.ServeLogin(&serve.Stream{Remote: key}, &wire.Login{Token: res.LoginToken}); serve.Code(err).Code != wire.CodeTokenInvalid {
		t.Errorf("second login: %v, want token_invalid", err)
	}

	written := len(r.keys()) // the technician, then its key bound at login
	tests := []struct {
		desc string
		args wire.TechnicianArgs
		code string
	}{
		{"name taken", wire.TechnicianArgs{Name: "alice", Clients: []string{"acme"}, Modes: []string{wire.ModeReadOnly}}, wire.CodeConflict},
		{"unknown client", wire.TechnicianArgs{Name: "bob", Clients: []string{"nobody"}, Modes: []string{wire.ModeReadOnly}}, wire.CodeNotFound},
	}
	for _, tc := range tests {
		if _, werr := a.AddTechnician(&tc.args); werr == nil || werr.Code != tc.code {
			t.Errorf("%s: %v, want %s", tc.desc, werr, tc.code)
		}
	}
	if len(r.keys()) != written {
		t.Errorf("refusals replicated: %v", r.keys()[written:])
	}
}
