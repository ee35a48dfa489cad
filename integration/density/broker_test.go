package density

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/tech"
	"github.com/readymesh/readymesh/peer/wire"
)

// brokerHeartbeat is the interval the broker tells agents to beat at: an
// idle agent, as in the field, not a test's millisecond timer.
const brokerHeartbeat = "60s"

// brokerFiles are what a broker's data directory holds between runs.
var brokerFiles = []string{"broker.key", "broker.db", "admin.credential"}

// brokerProc is a running broker binary with its own data directory.
type brokerProc struct {
	*proc
	dir   string
	info  wire.BrokerInfo
	quic  peer.AddrInfo // the broker's QUIC address only
	probe *probe
	pprof *probe // the broker's profiler; nil unless profileEnv is set
}

// startBroker runs the broker on dir, on loopback, with kernel-chosen ports
// read back from broker.json.
func startBroker(tb testing.TB, dir string) (*brokerProc, error) {
	return startBrokerOn(tb, dir, "127.0.0.1:0")
}

// startBrokerOn runs the broker on dir with its bridge listening on listen
// (the broker's --listen: host:port or comma-separated multiaddrs), and its
// HTTP port and STUN on kernel-chosen loopback ports.
func startBrokerOn(tb testing.TB, dir, listen string) (*brokerProc, error) {
	bin := needBroker(tb)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	extra, env, pprofAddr, err := pprofArgs()
	if err != nil {
		return nil, err
	}
	env = append(env, strings.Fields(os.Getenv(brokerVarsEnv))...)
	args := append([]string{"--data", dir, "--listen", listen, "--http", "127.0.0.1:0", "--stun", "127.0.0.1:0",
		"--heartbeat", brokerHeartbeat, "--log-level", "warn"}, extra...)
	args = append(args, strings.Fields(os.Getenv(brokerFlagsEnv))...)
	p, err := startProc(tb, "broker", dir, "broker ready", 60*time.Second, env, bin, args...)
	if err != nil {
		return nil, err
	}
	b := &brokerProc{proc: p, dir: dir}
	if pprofAddr != "" {
		b.pprof = newProbe(pprofAddr)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "broker.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &b.info); err != nil {
		return nil, fmt.Errorf("broker.json: %w", err)
	}
	quic := wire.BrokerInfo{PeerID: b.info.PeerID}
	for _, a := range b.info.Addrs {
		if strings.Contains(a, "/quic-v1/") {
			quic.Addrs = append(quic.Addrs, a)
		}
	}
	if len(quic.Addrs) == 0 {
		return nil, fmt.Errorf("%w: %v", errNoQUIC, b.info.Addrs)
	}
	if b.quic, err = bridge.AddrInfo(quic); err != nil {
		return nil, err
	}
	b.probe = newProbe(b.info.HTTP)
	return b, nil
}

// fixture is a broker data directory with n agents enrolled, and the
// agents' keys. Runs start a broker on a copy of it, so every run begins
// from the same store and enrolment costs once per test process.
type fixture struct {
	template string
	keys     []crypto.PrivKey
}

var fixtures struct {
	mu sync.Mutex
	m  map[int]*fixture // by agent count
}

// enrolled returns the fixture for n agents, enrolling them on first use.
func enrolled(tb testing.TB, n int) *fixture {
	tb.Helper()
	fixtures.mu.Lock()
	defer fixtures.mu.Unlock()
	if f := fixtures.m[n]; f != nil {
		return f
	}
	start := time.Now()
	f, err := enrollFixture(tb, n)
	if err != nil {
		tb.Fatalf("enrol %d agents: %v", n, err)
	}
	tb.Logf("enrolled %d agents in %s (once per test process)", n, time.Since(start).Round(time.Millisecond))
	if fixtures.m == nil {
		fixtures.m = map[int]*fixture{}
	}
	fixtures.m[n] = f
	return f
}

func enrollFixture(tb testing.TB, n int) (*fixture, error) {
	dir := filepath.Join(workDir, fmt.Sprintf("template-%d", n))
	// A failed earlier attempt may have left a half-enrolled store.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	b, err := startBroker(tb, dir)
	if err != nil {
		return nil, err
	}
	defer b.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tok, err := enrolmentToken(ctx, b, n)
	if err != nil {
		return nil, err
	}
	f := &fixture{template: dir}
	for range n {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		f.keys = append(f.keys, k)
	}
	err = forEach(ctx, n, dialWorkers, func(i int) error {
		var err error
		for try := 0; try < dialAttempts && ctx.Err() == nil; try++ {
			actx, acancel := context.WithTimeout(ctx, dialTimeout)
			err = enrollAgent(actx, f.keys[i], sourceIP(i), b.quic, tok, fmt.Sprintf("agent-%05d", i))
			acancel()
			if err == nil {
				return nil
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// A clean stop closes the store before the template is copied.
	b.stop()
	return f, nil
}

// enrolmentToken logs in as the broker's admin, creates the client
// "density" and one enrolment token good for n agents.
func enrolmentToken(ctx context.Context, b *brokerProc, n int) (wire.Token, error) {
	home := filepath.Join(b.dir, "admin-home")
	c, err := tech.Login(ctx, home, "", filepath.Join(b.dir, "admin.credential"))
	if err != nil {
		return wire.Token{}, err
	}
	defer c.Close()
	if err := c.Do(ctx, wire.OpClientsCreate, wire.ClientArgs{Name: "density"}, nil); err != nil {
		return wire.Token{}, err
	}
	var res wire.TokenResult
	args := wire.TokenArgs{Client: "density", Uses: n, TTLSec: 24 * 3600}
	if err := c.Do(ctx, wire.OpTokensCreate, args, &res); err != nil {
		return wire.Token{}, err
	}
	return wire.ParseToken(wire.KindEnroll, res.Token)
}

// copyTemplate copies the fixture's broker files into a new directory.
func (f *fixture) copyTemplate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, name := range brokerFiles {
		if err := copyFile(filepath.Join(f.template, name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
