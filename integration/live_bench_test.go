package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/readymesh/readymesh/mesh"
	techclient "github.com/readymesh/readymesh/peer/tech"
	"github.com/readymesh/readymesh/peer/wire"
)

// liveBench is a broker and one agent (real processes) and a session from
// this process, over direct QUIC on loopback.
func liveBench(b *testing.B, mode string) (*tech, *agent, *mesh.Session) {
	needBinaries(b)
	base := testDir(b)
	br := startBroker(b, base, "bench", time.Second)
	admin := br.admin(base)
	admin.ok("clients", "create", "acme")
	a := enroll(b, base, admin.token("acme", 1, time.Hour).Token, "pc-01", "windows-ready.json")
	a.start()
	waitOnline(b, admin, 20*time.Second, a)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := techclient.Open(ctx, admin.home)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	s, via, err := c.Connect(ctx, a.full(), techclient.SessionOptions{Mode: mode, Transport: wire.TransportQUIC, LocalAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	if via != c {
		b.Cleanup(func() { via.Close() })
	}
	b.Cleanup(func() { s.Close() })
	return admin, a, s
}

func percentiles(b *testing.B, rtts []time.Duration) {
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkKeystrokeEcho is a keystroke's round trip through the agent's
// PTY (the shell's line discipline echoes it) over a direct QUIC path,
// p50/p99, against the same byte echoed without a PTY (the echo channel:
// the path's floor), in the same session.
func BenchmarkKeystrokeEcho(b *testing.B) {
	_, _, s := liveBench(b, wire.ModeInteractive)
	ctx := context.Background()
	b.Run("pty", func(b *testing.B) {
		st, err := s.Open(ctx, "terminal")
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		hdr, _ := json.Marshal(wire.TerminalRequest{Rows: 24, Cols: 80, Term: "dumb"})
		wire.WriteChannelFrame(st, wire.FrameHeader, hdr)
		// Wait for the prompt, then type one letter at a time; erase each
		// so the line never grows.
		time.Sleep(300 * time.Millisecond)
		drain(st, 200*time.Millisecond)
		percentiles(b, typeAndTime(b, st, func() { waitOutput(b, st, '\b') }))
	})
	b.Run("no-pty", func(b *testing.B) {
		st, err := s.Open(ctx, mesh.ChanEcho)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		one := []byte("a")
		var rtts []time.Duration
		for b.Loop() {
			start := time.Now()
			st.Write(one)
			if _, err := io.ReadFull(st, one); err != nil {
				b.Fatal(err)
			}
			rtts = append(rtts, time.Since(start))
		}
		percentiles(b, rtts)
	})
}

// typeAndTime types one letter at a time into the terminal on st for
// b.Loop, timing each until its echo comes back, and erases it (waiting
// with erased) so that the line never grows.
func typeAndTime(b *testing.B, st io.ReadWriter, erased func()) []time.Duration {
	var rtts []time.Duration
	for b.Loop() {
		start := time.Now()
		wire.WriteChannelFrame(st, wire.FrameInput, []byte("a"))
		waitOutput(b, st, 'a')
		rtts = append(rtts, time.Since(start))
		wire.WriteChannelFrame(st, wire.FrameInput, []byte{0x7f})
		erased()
	}
	return rtts
}

// waitOutput reads output frames until one contains c.
func waitOutput(b *testing.B, r io.Reader, c byte) {
	for {
		typ, p, err := wire.ReadChannelFrame(r)
		if err != nil {
			b.Fatal(err)
		}
		if typ == wire.FrameOutput && bytes.IndexByte(p, c) >= 0 {
			return
		}
	}
}

// drain reads frames for d.
func drain(st interface {
	io.Reader
	SetReadDeadline(time.Time) error
}, d time.Duration) {
	st.SetReadDeadline(time.Now().Add(d))
	for {
		if _, _, err := wire.ReadChannelFrame(st); err != nil {
			break
		}
	}
	st.SetReadDeadline(time.Time{})
}

// BenchmarkCopy moves a 1 GiB file to the agent with meshctl cp (read,
// hash, frame, write, hash again, rename) over direct QUIC on loopback,
// against the path's raw throughput for the same bytes in the same run
// (the sink channel of a session).
func BenchmarkCopy(b *testing.B) {
	const size = 1 << 30
	admin, a, s := liveBench(b, wire.ModeInteractive)
	dir := testDir(b)
	src := filepath.Join(dir, "big.bin")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 4<<20)
	rand.Read(chunk)
	for range size / len(chunk) {
		f.Write(chunk)
	}
	f.Close()
	// The session user must reach the target directory.
	open, err := os.MkdirTemp("", "readymesh-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(open) })
	os.Chmod(open, 0o777)
	dstDir := open
	b.Run("meshctl-cp", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			admin.ok("cp", "--transport", "quic", src, a.full()+":"+filepath.Join(dstDir, "big.bin"))
		}
	})
	b.Run("raw-path", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if err := s.Send(context.Background(), size); err != nil {
				b.Fatal(err)
			}
		}
	})
}
