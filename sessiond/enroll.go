package sessiond

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pion/transport/v5"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/buildinfo"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
	"github.com/readymesh/readymesh/sessiond/localdb"
)

// EnrollConfig is what `sessiond enroll` needs.
type EnrollConfig struct {
	StateDir string
	Token    string // the enrolment token's text
	Name     string // the machine's name within its client
	// Broker, if set, overrides where the broker is dialled (a broker.json
	// path or multiaddrs): the issuing broker elsewhere, or another broker
	// of its cluster.
	Broker  string
	Timeout time.Duration // zero means 20 s
	// Net is the network the enrolment's bridge host takes its UDP
	// sockets from. Nil means the host's network; tests pass a pion vnet,
	// and the bridge then runs QUIC alone (see bridge.HostConfig.Net).
	Net transport.Net
}

// Enroll enrols this agent: it creates the agent's key, dials the broker the
// token pins and turns the token into a machine record. It pins the
// release key the token carries, if any: updates must be signed with it.
// On any refusal nothing is stored, on the broker or here, apart from the
// key.
func Enroll(ctx context.Context, cfg EnrollConfig) (localdb.Enrolment, error) {
	tok, info, err := cfg.target()
	if err != nil {
		return localdb.Enrolment{}, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return localdb.Enrolment{}, fmt.Errorf("enroll: %w", err)
	}
	db, err := localdb.Open(filepath.Join(cfg.StateDir, DBFile))
	if err != nil {
		return localdb.Enrolment{}, fmt.Errorf("enroll: %w", err)
	}
	defer db.Close()
	if e, err := db.Enrolment(); err == nil {
		return localdb.Enrolment{}, fmt.Errorf("enroll: %s is already enrolled as %s in client %s; use another --state directory to enrol again", cfg.StateDir, e.Name, e.Client)
	}
	key, _, err := identity.LoadOrCreate(filepath.Join(cfg.StateDir, KeyFile))
	if err != nil {
		return localdb.Enrolment{}, fmt.Errorf("enroll: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	reply, err := enrollCall(ctx, bridge.HostConfig{Key: key, Net: cfg.Net}, info, tok, cfg.Name)
	if err != nil {
		return localdb.Enrolment{}, err
	}
	e := localdb.Enrolment{MachineID: reply.MachineID, Name: reply.Name, Client: reply.Client,
		Broker: reply.Broker, EnrolledAt: time.Now().UTC(), ReleaseKey: tok.ReleaseKey}
	if err := db.SetEnrolment(e); err != nil {
		return localdb.Enrolment{}, fmt.Errorf("enroll: enrolled on the broker but could not save it here: %w", err)
	}
	return e, nil
}

// target checks the configuration and returns the token and the broker to
// dial: the one the token names, unless Broker overrides it.
func (cfg *EnrollConfig) target() (wire.Token, wire.BrokerInfo, error) {
	if cfg.StateDir == "" {
		return wire.Token{}, wire.BrokerInfo{}, errors.New("enroll: --state is required")
	}
	if err := wire.ValidName("machine name", cfg.Name); err != nil {
		return wire.Token{}, wire.BrokerInfo{}, fmt.Errorf("enroll: %w", err)
	}
	tok, err := wire.ParseToken(wire.KindEnroll, cfg.Token)
	if err != nil {
		return wire.Token{}, wire.BrokerInfo{}, fmt.Errorf("enroll: %w", err)
	}
	if tok.ReleaseKey, err = canonicalKey(tok.ReleaseKey); err != nil {
		return wire.Token{}, wire.BrokerInfo{}, fmt.Errorf("enroll: the token's release key: %w", err)
	}
	if cfg.Broker == "" {
		return tok, tok.Broker, nil
	}
	// Another broker of the issuing broker's cluster accepts the token;
	// any other broker refuses it, saying which broker issued it. The
	// broker dialled is pinned by the identity given here.
	over, err := bridge.ResolveBroker(cfg.Broker)
	if err != nil {
		return wire.Token{}, wire.BrokerInfo{}, fmt.Errorf("enroll: %w", err)
	}
	return tok, over, nil
}

// enrollCall dials the broker from a short-lived bridge host made with hc
// and asks it to turn the token into a machine record.
func enrollCall(ctx context.Context, hc bridge.HostConfig, info wire.BrokerInfo, tok wire.Token, name string) (*wire.EnrollReply, error) {
	h, err := bridge.NewHost(hc)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	defer h.Close()
	ai, err := bridge.AddrInfo(info)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if err := h.Connect(ctx, ai); err != nil {
		return nil, fmt.Errorf("enroll: cannot reach broker %s at %s: %w", ai.ID, strings.Join(info.Addrs, ", "), err)
	}
	hostname, _ := os.Hostname()
	req := wire.Enroll{Secret: tok.Secret, BrokerID: tok.Broker.PeerID, Name: name, Hostname: hostname, AgentVersion: buildinfo.Version, Versions: wire.OurVersions()}
	var reply wire.EnrollReply
	if err := bridge.Call(ctx, h, ai.ID, wire.ProtoEnroll, &req, &reply, wire.MaxControl); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if reply.Error != nil {
		return nil, fmt.Errorf("enroll: refused by the broker: %s", reply.Error.Message)
	}
	return &reply, nil
}
