package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/readymesh/readymesh/peer/bridge"
	"github.com/readymesh/readymesh/peer/identity"
	"github.com/readymesh/readymesh/peer/wire"
)

// BenchmarkAbuseMemory runs the two memory attacks found when the broker
// was tried as an attacker would, at full strength, against the real
// broker binary, and reports its RSS before and at the peak of each, and
// the size of /metrics:
//
//   - labels: a technician sends 3,000 made-up operation names of 60 KB.
//     Each name used to become a metric label (747 MB RSS, /metrics
//     380 MB); now they count under one.
//   - buffers: a key that was never enrolled opens 60 transcript streams
//     and sends 22 MB on each. The broker used to read each whole before it
//     checked the sender (1.55 GB); now it refuses it unread, and what an
//     enrolled caller can make it buffer is the protocol's quota
//     (--transcript-memory, 64 MiB by default).
//
// rss-peak/steady is the ratio that matters; steady is measured in the
// same run, after the broker has started and served one technician.
func BenchmarkAbuseMemory(b *testing.B) {
	needBinaries(b)
	for b.Loop() {
		base := testDir(b)
		br := startBroker(b, base, "abuse", time.Second)
		admin := br.admin(base)
		admin.ok("clients", "create", "acme")
		pid := br.proc.cmd.Process.Pid
		tech := attacker(b, br)
		tech.login(b, br)
		steady := rss(b, pid, "VmRSS")
		metricsBefore := metricsSize(b, br)

		tech.madeUpOps(b, 3000, 60<<10)
		afterLabels := rss(b, pid, "VmHWM")
		metricsAfter := metricsSize(b, br)

		stranger := attacker(b, br)
		stranger.transcripts(b, 60, wire.MaxTranscript/3*4)
		afterBuffers := rss(b, pid, "VmHWM")

		b.ReportMetric(steady/(1<<20), "steady-MB")
		b.ReportMetric(afterLabels/steady, "rss-peak/steady-labels")
		b.ReportMetric(afterBuffers/steady, "rss-peak/steady-buffers")
		b.ReportMetric(metricsAfter/metricsBefore, "metrics-after/before")
		b.ReportMetric(afterBuffers/(1<<20), "peak-MB")
	}
}

// abuser is a bridge host with a key of its own, connected to a broker.
type abuser struct {
	h      host.Host
	broker peer.ID
}

func attacker(b *testing.B, br *broker) *abuser {
	b.Helper()
	key, _, err := identity.LoadOrCreate(filepath.Join(b.TempDir(), "attacker.key"))
	if err != nil {
		b.Fatal(err)
	}
	h, err := bridge.NewHost(bridge.HostConfig{Key: key})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	ai, err := bridge.AddrInfo(br.info)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if err := h.Connect(ctx, ai); err != nil {
		b.Fatal(err)
	}
	return &abuser{h: h, broker: ai.ID}
}

// login makes the abuser a technician with the broker's admin credential:
// the first attack needs only what any technician has.
func (a *abuser) login(b *testing.B, br *broker) {
	raw, err := os.ReadFile(br.credential())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var r wire.LoginReply
	if err := bridge.Call(ctx, a.h, a.broker, wire.ProtoLogin, &wire.Login{Token: strings.TrimSpace(string(raw))}, &r, wire.MaxReply); err != nil || r.Error != nil {
		b.Fatalf("login with the admin credential: %v %v", err, r.Error)
	}
}

// madeUpOps sends n operations with made-up names of size bytes, four at
// a time, and checks each is refused.
func (a *abuser) madeUpOps(b *testing.B, n, size int) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
				name := fmt.Sprintf("op%d.%s", i, strings.Repeat("x", size))
				var r wire.Reply
				err := bridge.Call(ctx, a.h, a.broker, wire.ProtoTech, &wire.Request{Op: name}, &r, wire.MaxReply)
				cancel()
				if err == nil && r.Error == nil {
					err = fmt.Errorf("made-up operation %d answered", i)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// transcripts opens n transcript streams at once and writes size bytes on
// each behind a length prefix announcing them, then waits for the answer.
func (a *abuser) transcripts(b *testing.B, n, size int) {
	b.Helper()
	body := append(binary.AppendUvarint(nil, uint64(size)), `{"session":"s","name":"x.cast","cast":"`...)
	body = append(body, bytes.Repeat([]byte{'A'}, size-len(body))...)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
			defer cancel()
			s, err := a.h.NewStream(ctx, a.broker, protocol.ID(wire.ProtoTranscript))
			if err != nil {
				return // refused streams are the point
			}
			defer s.Reset()
			s.SetDeadline(time.Now().Add(cmdTimeout))
			go func() {
				s.Write(body)
				s.CloseWrite()
			}()
			io.Copy(io.Discard, s)
		})
	}
	wg.Wait()
}

// rss reads field (VmRSS, VmHWM) of pid's /proc status in bytes.
func rss(b *testing.B, pid int, field string) float64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// metricsSize is the size of the broker's /metrics page in bytes.
func metricsSize(b *testing.B, br *broker) float64 {
	b.Helper()
	resp, err := http.Get("http://" + br.info.HTTP + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return float64(n)
}
