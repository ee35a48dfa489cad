// Package tech is the technician's client library: it logs a technician key
// in to a broker and runs technician operations over the bridge. meshctl is
// built on it, and so will the console's server side be.
//
// A technician is its key. Logging in presents a one-time login token (or
// the broker's admin credential) once; the broker binds the key to the
// technician record, and from then on every request is authorised by the key
// that the bridge authenticated. Nothing secret is stored on the
// technician's side but the key itself.
package tech

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// File names inside the technician's home.
const (
	KeyFile    = "technician.key"
	ConfigFile = "config.json"
)

// ErrNotLoggedIn is returned when the home has no login.
var ErrNotLoggedIn = errors.New("not logged in; run meshctl login first")

// Home returns the technician's state directory: $READYMESH_HOME when set,
// else readymesh in the user config directory.
func Home() (string, error) {
	if h := os.Getenv("READYMESH_HOME"); h != "" {
		return h, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("tech: no config directory: %w", err)
	}
	return filepath.Join(dir, "readymesh"), nil
}

// Config is what login stores.
type Config struct {
	Broker     wire.BrokerInfo `json:"broker"`
	Technician wire.Technician `json:"technician"`
	// Brokers are the other brokers of the cluster, learned at login and
	// refreshed by `meshctl brokers`. Open tries them, home region first,
	// when Broker cannot be reached.
	Brokers []wire.BrokerInfo `json:"brokers,omitempty"`
}

// Client is a logged-in technician's connection to its broker.
type Client struct {
	host   host.Host
	broker peer.AddrInfo
	info   wire.BrokerInfo // the broker connected to
	key    *identity.Key
	home   string
	// Config is the stored login. While a client from Open is open, its
	// refresher (brokers.go) may replace Config.Brokers; mu guards that.
	Config Config
	mu     sync.Mutex
	// refresh is the broker-list refresher of a client from Open; nil
	// otherwise.
	refresh *refresher
}

// Login binds this home's technician key (created if needed) to the
// technician that credential names, and stores the broker. broker may be
// empty when the credential carries the broker's addresses (tokens do).
func Login(ctx context.Context, home, broker, credential string) (*Client, error) {
	tok, err := readCredential(credential)
	if err != nil {
		return nil, err
	}
	info := tok.Broker
	if broker != "" {
		// Another broker of the issuing broker's cluster accepts the
		// credential; any other broker refuses it.
		if info, err = bridge.ResolveBroker(broker); err != nil {
			return nil, err
		}
	}
	key, _, err := identity.LoadOrCreate(filepath.Join(home, KeyFile))
	if err != nil {
		return nil, err
	}
	c, err := dial(ctx, key, info)
	if err != nil {
		return nil, err
	}
	var reply wire.LoginReply
	if err := bridge.Call(ctx, c.host, c.broker.ID, wire.ProtoLogin, &wire.Login{Token: tok.String(), Versions: wire.OurVersions(), Program: "meshctl " + buildinfo.Version}, &reply, wire.MaxControl); err != nil {
		c.Close()
		return nil, fmt.Errorf("login: %w", err)
	}
	if reply.Error != nil {
		c.Close()
		return nil, fmt.Errorf("login: %s", reply.Error.Message)
	}
	c.Config, c.home = Config{Broker: info, Technician: reply.Technician}, home
	if err := saveConfig(home, c.Config); err != nil {
		c.Close()
		return nil, err
	}
	// Learn the cluster's other brokers for failover. A broker too old to
	// list them is no reason to fail the login.
	var ms []wire.BrokerMember
	if err := c.Do(ctx, wire.OpBrokers, nil, &ms); err == nil {
		c.RememberBrokers(ms)
	}
	return c, nil
}

// readCredential reads a token from a file path or takes it literally.
func readCredential(s string) (wire.Token, error) {
	if raw, err := os.ReadFile(s); err == nil {
		s = string(raw)
	}
	tok, err := wire.ParseToken(wire.KindLogin, s)
	if err != nil {
		return wire.Token{}, fmt.Errorf("login: --credential is neither a credential file nor a login token: %w", err)
	}
	return tok, nil
}

// Open connects with the login stored in home: to the broker it logged in
// to, or when that one cannot be reached, to another broker of the cluster
// (same region first), dialled when the one before has failed or has not
// answered within dialStagger.
func Open(ctx context.Context, home string) (*Client, error) {
	raw, err := os.ReadFile(filepath.Join(home, ConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotLoggedIn
	} else if err != nil {
		return nil, err
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("tech: %s: %w", filepath.Join(home, ConfigFile), err)
	}
	key, err := identity.Load(filepath.Join(home, KeyFile))
	if err != nil {
		return nil, err
	}
	c, err := dialFirst(ctx, key, candidates(cfg), dialStagger)
	if err != nil {
		return nil, err
	}
	c.Config, c.home = cfg, home
	c.refresh = startRefresh(c)
	return c, nil
}

// candidates lists the brokers to try: the login broker, then the others
// of its region, then the rest.
func candidates(cfg Config) []wire.BrokerInfo {
	out := []wire.BrokerInfo{cfg.Broker}
	for pass := 0; pass < 2; pass++ {
		for _, b := range cfg.Brokers {
			same := b.Region == cfg.Broker.Region
			if b.PeerID != cfg.Broker.PeerID && same == (pass == 0) {
				out = append(out, b)
			}
		}
	}
	return out
}

func dial(ctx context.Context, key *identity.Key, info wire.BrokerInfo) (*Client, error) {
	ai, err := bridge.AddrInfo(info)
	if err != nil {
		return nil, err
	}
	h, err := bridge.NewHost(bridge.HostConfig{Key: key})
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := connect(dctx, h, ai); err != nil {
		h.Close()
		return nil, fmt.Errorf("cannot reach broker %s: %w", ai.ID, err)
	}
	return &Client{host: h, broker: ai, key: key, info: info}, nil
}

func saveConfig(home string, cfg Config) error {
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(home, ConfigFile)
	if err := os.WriteFile(path+".tmp", append(raw, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// Close stops the broker-list refresher, once its first refresh is done
// (see closeWait), and closes the bridge.
func (c *Client) Close() error {
	if c.refresh != nil {
		c.refresh.stop()
	}
	return c.host.Close()
}

// Do runs one operation: args is encoded as the request's arguments and the
// result decoded into result (which may be nil).
func (c *Client) Do(ctx context.Context, op string, args, result any) error {
	req := wire.Request{Op: op, Versions: wire.OurVersions()}
	if args != nil {
		raw, err := json.Marshal(args)
		if err != nil {
			return err
		}
		req.Args = raw
	}
	var reply wire.Reply
	if err := bridge.Call(ctx, c.host, c.broker.ID, wire.ProtoTech, &req, &reply, wire.MaxReply); err != nil {
		return err
	}
	if reply.Error != nil {
		return reply.Error
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(reply.Result, result); err != nil {
		return fmt.Errorf("%s: decode result: %w", op, err)
	}
	return nil
}
