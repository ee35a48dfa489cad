package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/readymesh/readymesh/mesh"
	techclient "github.com/readymesh/readymesh/peer/tech"
	"github.com/readymesh/readymesh/peer/wire"
)

// BenchmarkKeystrokeEchoConPTY is a keystroke's round trip through the
// Windows agent's pseudo console (cmd.exe under Wine: conhost renders the
// echo as VT output), against the Linux agent's PTY (sh) in the same run,
// p50/p99. Both sessions are relayed through the same broker on loopback,
// the only path the Wine agent has. A report, with no aim: Wine's console
// is not Windows', so the ratio says what the pseudo console path costs
// here, not on a real machine.
func BenchmarkKeystrokeEchoConPTY(b *testing.B) {
	needBinaries(b)
	prefix := needWine(b)
	base := testDir(b)
	br := startBroker(b, base, "bench", time.Second)
	admin := br.admin(base)
	admin.ok("clients", "create", "acme")
	lin := enroll(b, base, admin.token("acme", 1, time.Hour).Token, "linux-01", "linux-ready.json")
	lin.start()
	win, _ := startWineAgent(b, prefix, base, admin, "win-01")
	waitOnline(b, admin, 90*time.Second, lin, win)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := techclient.Open(ctx, admin.home)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	open := func(a *agent) *mesh.Session {
		s, via, err := c.Connect(ctx, a.full(), techclient.SessionOptions{Mode: wire.ModeElevated,
			Transport: wire.TransportRelay, LocalAddr: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		if via != c {
			b.Cleanup(func() { via.Close() })
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	for _, tc := range []struct {
		name  string
		a     *agent
		shell string
	}{{"linux-pty", lin, wire.ShellSh}, {"wine-conpty", win, wire.ShellCmd}} {
		s := open(tc.a)
		b.Run(tc.name, func(b *testing.B) {
			st, err := s.Open(ctx, "terminal")
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			hdr, _ := json.Marshal(wire.TerminalRequest{Rows: 24, Cols: 80, Term: "dumb", Shell: tc.shell})
			wire.WriteChannelFrame(st, wire.FrameHeader, hdr)
			time.Sleep(time.Second) // the prompt
			drain(st, 300*time.Millisecond)
			// The erase comes back as a backspace from sh's line
			// discipline, as a repaint (an escape sequence) from conhost.
			percentiles(b, typeAndTime(b, st, func() { waitErase(b, st) }))
		})
	}
}

// waitErase reads output frames until one shows an erase: a backspace or
// an escape sequence.
func waitErase(b *testing.B, st interface {
	Read([]byte) (int, error)
}) {
	for {
		typ, p, err := wire.ReadChannelFrame(st)
		if err != nil {
			b.Fatal(err)
		}
		if typ == wire.FrameOutput && (bytes.IndexByte(p, '\b') >= 0 || bytes.IndexByte(p, 0x1b) >= 0) {
			return
		}
	}
}
