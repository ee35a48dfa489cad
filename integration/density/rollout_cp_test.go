package density

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readymesh/readymesh/peer/tech"
	"github.com/readymesh/readymesh/peer/wire"
)

// The rollout's baseline: one `meshctl cp` of the same binary to one real
// sessiond, enrolled on the same broker in a client of its own (so the
// rollout, which selects the fleet's client, leaves it alone), over direct
// QUIC as a technician copies a file by hand. The broker only introduces
// the two ends; what it carries of the file is what its own counters of
// file bytes say: release blobs served and relayed session bytes.

// sessiondBin builds this tree's sessiond once per test process, on first
// use: the rollout's release binary and the baseline's agent.
var sessiondBin = sync.OnceValues(func() (string, error) {
	return build("sessiond", "github.com/readymesh/readymesh/sessiond/cmd/sessiond")
})

// Series of the broker's /metrics that count file bytes it moved.
const (
	blobToAgents = `readymesh_release_blob_bytes_total{flow="to_agent"}`
	relayedBytes = "readymesh_relay_bytes_total"
)

// cpClient is the baseline agent's client.
const cpClient = "baseline"

// cpResult is the baseline copy.
type cpResult struct {
	took time.Duration // the meshctl process, start to exit
	// brokerBytes is what the broker's counters of file bytes (blobs to
	// agents, relayed session bytes) grew by during the copy.
	brokerBytes float64
	path        string // the session's path, as meshctl reports it
}

// copyBaseline enrols and runs a sessiond in dir, copies file to it once
// with meshctl cp as the technician whose login is in home, checks the
// copy, and stops the agent.
func copyBaseline(ctx context.Context, tb testing.TB, b *brokerProc, c *tech.Client, home, dir, file string) (cpResult, error) {
	bin, err := sessiondBin()
	if err != nil {
		return cpResult{}, err
	}
	if err := c.Do(ctx, wire.OpClientsCreate, wire.ClientArgs{Name: cpClient}, nil); err != nil {
		return cpResult{}, err
	}
	var tok wire.TokenResult
	if err := c.Do(ctx, wire.OpTokensCreate, wire.TokenArgs{Client: cpClient, Uses: 1, TTLSec: 3600}, &tok); err != nil {
		return cpResult{}, err
	}
	state := filepath.Join(dir, "cp-agent")
	if _, err := runQuiet(ctx, nil, bin, "enroll", "--token", tok.Token, "--name", "cp-target", "--state", state); err != nil {
		return cpResult{}, err
	}
	agent, err := startDaemon(tb, "sessiond", dir, bin, "run", "--state", state, "--interval", "1h",
		"--reconnect-max", "1s", "--session-addr", "127.0.0.1:0")
	if err != nil {
		return cpResult{}, err
	}
	defer agent.stop()
	if err := waitMachineOnline(ctx, c, cpClient); err != nil {
		return cpResult{}, err
	}
	// The session's user writes the copy: it must reach the directory,
	// which tb.TempDir's are not open enough for.
	dst, err := os.MkdirTemp("", "readymesh-density-cp-")
	if err != nil {
		return cpResult{}, err
	}
	tb.Cleanup(func() { os.RemoveAll(dst) })
	if err := os.Chmod(dst, 0o777); err != nil {
		return cpResult{}, err
	}
	before, err := fileBytes(ctx, b.probe)
	if err != nil {
		return cpResult{}, err
	}
	target := filepath.Join(dst, "sessiond")
	start := time.Now()
	out, err := meshctl(ctx, home, "cp", "--transport", wire.TransportQUIC, file, cpClient+"/cp-target:"+target)
	r := cpResult{took: time.Since(start), path: copyPath(out)}
	if err != nil {
		return cpResult{}, err
	}
	after, err := fileBytes(ctx, b.probe)
	if err != nil {
		return cpResult{}, err
	}
	r.brokerBytes = after - before
	if err := sameFile(file, target); err != nil {
		return cpResult{}, fmt.Errorf("meshctl cp: %w", err)
	}
	return r, os.Remove(target)
}

// copyPath picks the path out of meshctl cp's "copied … over PATH, sha256
// verified".
func copyPath(out string) string {
	_, after, ok := strings.Cut(out, " over ")
	if !ok {
		return ""
	}
	path, _, _ := strings.Cut(after, ",")
	return strings.TrimSpace(path)
}

// waitMachineOnline waits until client's one machine is online and has
// checked in: before that the broker offers no session to it.
func waitMachineOnline(ctx context.Context, c *tech.Client, client string) error {
	on := true
	var n int
	err := waitFor(ctx, time.Minute, func() bool {
		var cards []wire.Card
		if c.Do(ctx, wire.OpMachines, wire.MachinesArgs{Client: client, Online: &on}, &cards) != nil {
			return false
		}
		n = 0
		for _, card := range cards {
			if card.Readiness.CheckInSeq > 0 {
				n++
			}
		}
		return n == 1
	})
	if err != nil {
		return fmt.Errorf("client %s has %d machines online and checked in: %w", client, n, err)
	}
	return nil
}

// fileBytes sums the broker's counters of file bytes it carried.
func fileBytes(ctx context.Context, p *probe) (float64, error) {
	blobs, err := p.series(ctx, blobToAgents)
	if err != nil {
		return 0, err
	}
	relayed, err := p.series(ctx, relayedBytes)
	return blobs + relayed, err
}

// series returns the value of one series of /metrics, named as the text
// format writes it (with its labels).
func (p *probe) series(ctx context.Context, name string) (float64, error) {
	resp, err := p.get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s/metrics lacks %s", p.base, name)
}

// sameFile checks that the files at a and b hold the same bytes.
func sameFile(a, b string) error {
	ha, err := hashFile(a)
	if err != nil {
		return err
	}
	hb, err := hashFile(b)
	if err != nil {
		return err
	}
	if !bytes.Equal(ha, hb) {
		return fmt.Errorf("%s differs from %s", b, a)
	}
	return nil
}

func hashFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// meshctl runs this tree's meshctl as the technician whose login is in
// home, as its own process, and returns its stdout.
func meshctl(ctx context.Context, home string, args ...string) (string, error) {
	bin, err := meshctlBin()
	if err != nil {
		return "", err
	}
	return runQuiet(ctx, []string{"READYMESH_HOME=" + home}, bin, args...)
}

// runQuiet runs bin with args and env added, within two minutes, and
// returns its stdout; its stderr goes into the error.
func runQuiet(ctx context.Context, env []string, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", filepath.Base(bin), strings.Join(args[:min(2, len(args))], " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// startDaemon starts bin with args as a proc that prints no ready line
// (sessiond run), its stderr to a log in dir. The caller waits for it by
// other means; stop and tb.Cleanup end it as they end the broker.
func startDaemon(tb testing.TB, name, dir, bin string, args ...string) (*proc, error) {
	p, _, err := launch(tb, name, dir, nil, false, bin, args...)
	return p, err
}
