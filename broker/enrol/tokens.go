package enrol

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/readymesh/readymesh/broker/internal/serve"
	"github.com/readymesh/readymesh/broker/store"
	"github.com/readymesh/readymesh/peer/atomicfile"
	"github.com/readymesh/readymesh/peer/wire"
)

// CreateToken runs OpTokensCreate: an enrolment token for a's client.
// It carries the fleet's release key, when there is one, for the agent
// to pin: the agent then installs only releases that key signed.
func (a *Admission) CreateToken(t *wire.Technician, args *wire.TokenArgs) (wire.TokenResult, *wire.Error) {
	uses, ttl := args.Uses, time.Duration(args.TTLSec)*time.Second
	if uses == 0 {
		uses = 1
	}
	if ttl == 0 {
		ttl = a.cfg.TokenTTL
	}
	now := a.cfg.Now().UTC()
	tok := wire.Token{Kind: wire.KindEnroll, Secret: wire.NewSecret(), Broker: a.self.Info()}
	if k, ok := a.store.ReleaseKey(); ok {
		tok.ReleaseKey = k.PublicKey
	}
	rec := store.Token{Client: args.Client, UsesLeft: uses, Uses: uses, ExpiresAt: now.Add(ttl),
		CreatedBy: t.Name, CreatedAt: now}
	if err := a.store.CreateToken(wire.HashSecret(tok.Secret), rec); err != nil {
		return wire.TokenResult{}, serve.StoreError(err)
	}
	a.repl.Written(store.Key{Kind: store.KindToken, ID: wire.HashSecret(tok.Secret)})
	a.cfg.Logger.Info("enrolment token created", "client", args.Client, "uses", uses, "expires", rec.ExpiresAt, "by", t.Name)
	return wire.TokenResult{Token: tok.String(), Client: args.Client, Uses: uses, ExpiresAt: rec.ExpiresAt}, nil
}

// AddTechnician runs OpTechniciansAdd: the technician, and a one-time
// login token for it.
func (a *Admission) AddTechnician(args *wire.TechnicianArgs) (wire.TechnicianResult, *wire.Error) {
	now := a.cfg.Now().UTC()
	t := wire.Technician{Name: args.Name, Clients: args.Clients, Modes: args.Modes, CreatedAt: now}
	tok := wire.Token{Kind: wire.KindLogin, Secret: wire.NewSecret(), Broker: a.self.Info()}
	exp := now.Add(a.cfg.LoginTTL)
	if err := a.store.CreateTechnician(t, wire.HashSecret(tok.Secret), exp); err != nil {
		return wire.TechnicianResult{}, serve.StoreError(err)
	}
	a.repl.Written(store.Key{Kind: store.KindTechnician, ID: t.Name})
	a.cfg.Logger.Info("technician added", "technician", args.Name, "clients", args.Clients, "modes", args.Modes)
	return wire.TechnicianResult{Technician: t, LoginToken: tok.String(), ExpiresAt: exp}, nil
}

// EnsureAdmin creates the admin credential on first start, or rewrites
// the existing one with the broker's current addresses, and returns its
// path. RotateAdmin replaces the credential while the broker serves (and
// deleting the file and restarting the broker still makes a new one,
// without signing anybody out). It must be called before the broker
// serves logins.
func (a *Admission) EnsureAdmin() (string, error) {
	path := filepath.Join(a.cfg.DataDir, CredentialFile)
	tok, err := a.loadCredential(path)
	if err != nil {
		return "", err
	}
	hash := wire.HashSecret(tok.Secret)
	a.adminHash.Store(&hash)
	if a.store.AdminHash() == "" {
		// First start of this broker or of the cluster: creates the admin
		// technician. Later starts leave the replicated record alone.
		if err := a.store.SetAdminHash(hash, a.cfg.Now()); err != nil {
			return "", fmt.Errorf("broker: admin credential: %w", err)
		}
	}
	tok.Broker = a.self.Info()
	if err := atomicfile.Write(path, []byte(tok.String()+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("broker: %w", err)
	}
	return path, nil
}

// loadCredential reads this broker's admin credential, or makes one.
func (a *Admission) loadCredential(path string) (wire.Token, error) {
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok, err := wire.ParseToken(wire.KindLogin, string(raw))
		if err != nil || tok.Broker.PeerID != a.self.ID() {
			return tok, fmt.Errorf("broker: %s is not this broker's admin credential; delete it to create a new one", path)
		}
		return tok, nil
	case errors.Is(err, os.ErrNotExist):
		a.cfg.Logger.Info("created admin credential", "path", path)
		return wire.Token{Kind: wire.KindLogin, Secret: wire.NewSecret()}, nil
	}
	return wire.Token{}, fmt.Errorf("broker: %w", err)
}
